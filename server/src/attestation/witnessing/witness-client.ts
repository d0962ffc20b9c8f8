// One C2SP tlog-witness add-checkpoint exchange: POST <witness>/add-checkpoint with `old <size>`,
// the consistency proof from that size, an empty line and the signed checkpoint. The answer is a
// value: the witness's verified cosignature line, the size it says it has (409), or a failure
// with a bounded reason. Every exchange is bounded in time and in the bytes read back, follows no
// redirect, and trusts nothing the witness sends until the witness key verifies it.
import { cosignatureTimeOf, openNote, parseNote, VerifyError, witnessNoteVerifier } from "@kapsel/verify";
import type { ConfiguredWitness } from "./witness-config.ts";

/** Why an exchange failed: the metric label and /readyz detail (a closed set). */
export const WITNESS_FAILURES = [
  "timeout",
  "unreachable",
  "conflict",
  "malformed_request",
  "bad_log_signature",
  "unknown_log",
  "inconsistent",
  "witness_ahead",
  "server_error",
  "unexpected_status",
  "bad_response",
  "bad_cosignature",
] as const;
export type WitnessFailure = (typeof WITNESS_FAILURES)[number];

export type Exchange =
  | { readonly kind: "cosigned"; readonly line: string; readonly timestamp: bigint }
  | { readonly kind: "conflict"; readonly size: number }
  | { readonly kind: "failed"; readonly reason: WitnessFailure; readonly detail: string };

export interface AddCheckpointRequest {
  readonly oldSize: number;
  readonly proof: readonly Buffer[];
  /** The signed checkpoint as the log stored it (note text, empty line, the log's lines). */
  readonly note: string;
}

/** Largest answer read from a witness: cosignature lines are ~130 bytes, a 409 body a number. */
export const MAX_ANSWER_BYTES = 16 * 1024;
/** Most signature lines accepted in one answer (a witness may return several key types). */
const MAX_ANSWER_LINES = 16;

/** The add-checkpoint request body (C2SP tlog-witness). */
export function addCheckpointBody(request: AddCheckpointRequest): string {
  return `old ${request.oldSize}\n${request.proof.map((h) => `${h.toString("base64")}\n`).join("")}\n${request.note}`;
}

/**
 * Sends one add-checkpoint request and interprets the answer. Never throws; `cancel` (shutdown)
 * ends the exchange early, reported as a timeout.
 */
export async function addCheckpoint(witness: ConfiguredWitness, request: AddCheckpointRequest, timeoutMs: number, cancel?: AbortSignal): Promise<Exchange> {
  const answer = await post(`${witness.url}/add-checkpoint`, addCheckpointBody(request), timeoutMs, cancel);
  if ("failure" in answer) return answer.failure;
  const { status, body, contentType } = answer;
  const text = (detail: string) => `${detail}: ${JSON.stringify(body.slice(0, 200))}`;
  switch (status) {
    case 200:
      return cosignatureIn(witness, request.note, body);
    case 409: {
      const match = /^(0|[1-9]\d{0,15})\n?$/.exec(body);
      if (!contentType.startsWith("text/x.tlog.size") || !match || !Number.isSafeInteger(Number(match[1]))) {
        return failed("bad_response", text("409 without a text/x.tlog.size body"));
      }
      return { kind: "conflict", size: Number(match[1]) };
    }
    case 400:
      return failed("malformed_request", text("400"));
    case 403:
      return failed("bad_log_signature", text("403: the witness does not accept the log's signature (is the log's current vkey in its --log list?)"));
    case 404:
      return failed("unknown_log", text("404: the witness does not follow this log's origin"));
    case 422:
      return failed("inconsistent", text("422: the witness says this checkpoint does not extend the one it cosigned"));
    default:
      return failed(status >= 500 ? "server_error" : "unexpected_status", text(String(status)));
  }
}

/** GETs a small text document from a witness (its cosigned checkpoint, for evidence); undefined unless 200. */
export async function fetchText(url: string, timeoutMs: number): Promise<string | undefined> {
  const answer = await request(url, { method: "GET" }, timeoutMs);
  return "failure" in answer || answer.status !== 200 ? undefined : answer.body;
}

function cosignatureIn(witness: ConfiguredWitness, note: string, body: string): Exchange {
  if (!body.endsWith("\n")) return failed("bad_response", "200 whose body does not end in a newline");
  const lines = body.slice(0, -1).split("\n");
  if (lines.length > MAX_ANSWER_LINES) return failed("bad_response", `200 with ${lines.length} lines`);
  const verifier = witnessNoteVerifier(witness.key);
  for (const line of lines) {
    let opened;
    try {
      opened = openNote(parseNote(`${note}${line}\n`), [verifier]);
    } catch (error) {
      if (error instanceof VerifyError) return failed("bad_response", `200 with a line that is not a note signature: ${JSON.stringify(line.slice(0, 200))}`);
      throw error;
    }
    if (opened.failed.length > 0) return failed("bad_cosignature", `the line of ${witness.name}'s key does not verify over the checkpoint`);
    const mine = opened.verified[0];
    if (mine === undefined) continue;
    const timestamp = cosignatureTimeOf(mine.signature.signature);
    if (timestamp === 0n) return failed("bad_cosignature", "the cosignature's time is 0");
    return { kind: "cosigned", line: `${line}\n`, timestamp };
  }
  return failed("bad_cosignature", `200 without a line of the configured key ${witness.key.vkey}`);
}

type Answer = { status: number; body: string; contentType: string } | { failure: Exchange & { kind: "failed" } };

function post(url: string, body: string, timeoutMs: number, cancel?: AbortSignal): Promise<Answer> {
  return request(url, { method: "POST", body, headers: { "content-type": "text/plain; charset=utf-8" } }, timeoutMs, cancel);
}

async function request(url: string, init: RequestInit, timeoutMs: number, cancel?: AbortSignal): Promise<Answer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = cancel ? AbortSignal.any([timeout, cancel]) : timeout;
  try {
    const response = await fetch(url, { ...init, redirect: "manual", signal });
    const bytes = await readCapped(response, MAX_ANSWER_BYTES);
    if (bytes === undefined) return { failure: failed("bad_response", `answer larger than ${MAX_ANSWER_BYTES} bytes`) };
    const body = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    return { status: response.status, body, contentType: response.headers.get("content-type") ?? "" };
  } catch (err) {
    if (timeout.aborted) return { failure: failed("timeout", `no answer within ${timeoutMs} ms`) };
    if (signal.aborted) return { failure: failed("timeout", "cancelled: the server is stopping") };
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { failure: failed("unreachable", cause?.code ?? cause?.message ?? (err as Error).message) };
  }
}

/** The body, or undefined once it passes `max` bytes (the rest is not read). */
async function readCapped(response: Response, max: number): Promise<Uint8Array | undefined> {
  const declared = Number(response.headers.get("content-length") ?? 0);
  if (declared > max) {
    await response.body?.cancel();
    return undefined;
  }
  const chunks: Uint8Array[] = [];
  let length = 0;
  if (response.body === null) return new Uint8Array();
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks);
    length += value.byteLength;
    if (length > max) {
      // The rest is never read.
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
}

function failed(reason: WitnessFailure, detail: string): Exchange & { kind: "failed" } {
  return { kind: "failed", reason, detail };
}
