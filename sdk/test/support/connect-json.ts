// The Connect protocol by hand, as a curl or fetch user without any library sees it: unary JSON
// POSTs, and server streams as enveloped JSON (5-byte prefix: flags, big-endian length), ending
// with an end-stream envelope (flag 0x02) that carries the error, if any.
import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import { ErrorInfoSchema } from "@kapsel/contracts/error-details";

export interface ConnectJsonError {
  code: Code;
  kapselCode: string | undefined;
}

interface WireError {
  code?: string;
  message?: string;
  details?: { type: string; value: string }[];
}

/** Code and Kapsel code of a Connect JSON error, decoding the ErrorInfo detail's bytes. */
export function parseError(error: WireError): ConnectJsonError {
  const code = error.code === undefined ? undefined : codeFromString(error.code);
  if (code === undefined) throw new Error(`not a Connect error: ${JSON.stringify(error)}`);
  const info = error.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  const bytes = info && Uint8Array.from(atob(info.value.padEnd(Math.ceil(info.value.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
  return { code, kapselCode: bytes && fromBinary(ErrorInfoSchema, bytes).reason };
}

export function envelope(json: unknown, flags = 0): Uint8Array {
  const data = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

export type StreamItem = { message: any } | { end: { error?: WireError; metadata?: Record<string, string[]> } };

/** POSTs a server-streaming Connect JSON request and yields messages, then the end-stream frame. */
export async function* connectJsonStream(
  url: string,
  request: unknown,
  headers: Record<string, string>,
  signal?: AbortSignal,
): AsyncGenerator<StreamItem> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/connect+json", "connect-protocol-version": "1", ...headers },
    body: envelope(request) as Uint8Array<ArrayBuffer>,
    signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`stream answered ${res.status}: ${await res.text()}`);
  const reader = res.body.getReader();
  let buffered = new Uint8Array(0);
  for (;;) {
    while (buffered.length >= 5) {
      const length = new DataView(buffered.buffer, buffered.byteOffset).getUint32(1);
      if (buffered.length < 5 + length) break;
      const flags = buffered[0]!;
      const json = JSON.parse(new TextDecoder().decode(buffered.subarray(5, 5 + length)));
      buffered = buffered.subarray(5 + length);
      if (flags & 0x02) {
        yield { end: json };
        return;
      }
      yield { message: json };
    }
    const { value, done } = await reader.read();
    if (done) throw new Error("stream ended without an end-stream frame");
    const next = new Uint8Array(buffered.length + value.length);
    next.set(buffered);
    next.set(value, buffered.length);
    buffered = next;
  }
}
