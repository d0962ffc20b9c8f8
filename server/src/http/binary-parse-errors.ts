// A request body that is not valid binary protobuf is the caller's mistake, but connect-es (2.x)
// answers every binary parse failure with Internal ("parse binary: …"), before any interceptor
// could say otherwise. This wraps each RPC's protocol handler and turns exactly that answer into
// InvalidArgument, in the form each protocol carries errors: the Connect unary JSON body and
// status, the Connect end-of-stream message, gRPC trailers, the gRPC-Web trailer frame.
import { Code } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

const PARSE_FAILURE = /^parse binary: /;
const INTERNAL = String(Code.Internal);
const INVALID_ARGUMENT = String(Code.InvalidArgument);

/** The same handler, answering a binary parse failure with InvalidArgument. */
export function withParseFailuresAsInvalidArgument(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]) => rewrite(await handler(req));
  return Object.assign(wrapped, {
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}

async function rewrite(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const type = res.header?.get("content-type") ?? "";
  const body = res.body;
  if (body === undefined || !(Symbol.asyncIterator in body)) return res;
  const chunks = body as AsyncIterable<Uint8Array>;
  if (type.startsWith("application/json") && res.status === 500) return connectUnary(res, chunks);
  if (type.startsWith("application/connect+")) return { ...res, body: mapChunks(chunks, (c) => (c[0]! & 0x02 ? connectEndStream(c) : c)) };
  if (type.startsWith("application/grpc-web")) return { ...res, body: mapChunks(chunks, (c) => (c[0]! & 0x80 ? grpcWebTrailer(c) : c)) };
  if (type.startsWith("application/grpc")) return { ...res, body: afterLast(chunks, () => grpcTrailers(res.trailer)) };
  return res;
}

/** Connect unary: a 500 whose JSON error is a parse failure becomes 400 invalid_argument. (The
 * error body is a few hundred bytes, already in memory.) */
async function connectUnary(res: UniversalServerResponse, chunks: AsyncIterable<Uint8Array>): Promise<UniversalServerResponse> {
  const parts: Uint8Array[] = [];
  for await (const c of chunks) parts.push(c);
  let bytes: Uint8Array = Buffer.concat(parts);
  let status = res.status;
  const header = new Headers(res.header);
  const json = header.has("content-encoding") ? undefined : parseJson(Buffer.from(bytes).toString());
  const error = json as { code?: string; message?: string } | undefined;
  if (error?.code === "internal" && PARSE_FAILURE.test(error.message ?? "")) {
    error.code = "invalid_argument";
    bytes = Buffer.from(JSON.stringify(error));
    status = 400;
    header.set("content-length", String(bytes.byteLength));
  }
  return { ...res, status, header, body: (async function* () { yield bytes; })() };
}

function mapChunks(chunks: AsyncIterable<Uint8Array>, map: (chunk: Uint8Array) => Uint8Array): AsyncIterable<Uint8Array> {
  return (async function* () {
    for await (const c of chunks) yield c.length > 0 ? map(c) : c;
  })();
}

function afterLast(chunks: AsyncIterable<Uint8Array>, done: () => void): AsyncIterable<Uint8Array> {
  return (async function* () {
    yield* chunks;
    done();
  })();
}

/** The end-of-stream envelope (flag 0x02, uncompressed: small messages are never compressed). */
function connectEndStream(chunk: Uint8Array): Uint8Array {
  if (chunk[0]! & 0x01) return chunk;
  const json = parseJson(Buffer.from(chunk.subarray(5)).toString());
  const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
  if (error?.code !== "internal" || !PARSE_FAILURE.test(error.message ?? "")) return chunk;
  error.code = "invalid_argument";
  return envelope(chunk[0]!, Buffer.from(JSON.stringify(json)));
}

function grpcTrailers(trailer: Headers | undefined): void {
  if (trailer?.get("grpc-status") !== INTERNAL) return;
  if (PARSE_FAILURE.test(decodeURIComponent(trailer.get("grpc-message") ?? ""))) trailer.set("grpc-status", INVALID_ARGUMENT);
}

/** The gRPC-Web trailer frame (flag 0x80): HTTP/1-style header lines. */
function grpcWebTrailer(chunk: Uint8Array): Uint8Array {
  if (chunk[0]! & 0x01) return chunk;
  const text = Buffer.from(chunk.subarray(5)).toString("latin1");
  const message = /^grpc-message:\s*(.*)$/im.exec(text)?.[1]?.trim() ?? "";
  if (!/^grpc-status:\s*13\s*$/im.test(text) || !PARSE_FAILURE.test(decodeURIComponent(message))) return chunk;
  return envelope(chunk[0]!, Buffer.from(text.replace(/^grpc-status:\s*13\s*$/im, `grpc-status: ${INVALID_ARGUMENT}`), "latin1"));
}

function envelope(flags: number, data: Buffer): Uint8Array {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(data.length, 1);
  return Buffer.concat([head, data]);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
