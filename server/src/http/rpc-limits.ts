// How much of a request each RPC may read: IngestBatch a batch's worth (KAPSEL_MAX_RPC_BYTES),
// Ingest one payload's worth, everything else 64 KiB, which is many times the largest request
// they take. Connect enforces the limit while it reads the body and again while it decompresses
// it, so a small compressed body that would expand past the limit is refused as soon as it does
// (ResourceExhausted, as gRPC answers an oversized message), and nothing past it is ever buffered.
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Compression } from "@connectrpc/connect/protocol";

/** Every RPC but the two ingest calls. */
export const SMALL_RPC_BYTES = 64 * 1024;
/** Room for an Ingest request's other fields (headers are at most 16 KiB, the rest is small). */
const INGEST_FIELDS_BYTES = 64 * 1024;

export interface RpcReadLimits {
  /** IngestBatch. */
  batchBytes: number;
  /** The largest event payload; an Ingest request may carry one, base64 in JSON. */
  payloadBytes: number;
}

/** The read limit of one RPC. */
export function readLimitOf(method: DescMethod, limits: RpcReadLimits): number {
  if (method.parent.typeName === "kapsel.v1.IngestService") {
    if (method.name === "IngestBatch") return limits.batchBytes;
    if (method.name === "Ingest") return Math.ceil(limits.payloadBytes / 3) * 4 + INGEST_FIELDS_BYTES;
  }
  return SMALL_RPC_BYTES;
}

/** A router whose services register method by method, each with its own read limit (a service's
 * own, smaller limit, like reflection's, is kept). */
export function withReadLimits(router: ConnectRouter, limitOf: (method: DescMethod) => number): ConnectRouter {
  const limited: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service: DescService, impl, options) {
      for (const method of service.methods) {
        const own = (impl as Record<string, unknown>)[method.localName];
        const fn = typeof own === "function" ? own.bind(impl) : unimplemented(service, method);
        const readMaxBytes = Math.min(options?.readMaxBytes ?? Infinity, limitOf(method));
        router.rpc(method, fn as never, { ...options, readMaxBytes });
      }
      return limited;
    },
    rpc(method, impl, options) {
      router.rpc(method, impl, { ...options, readMaxBytes: Math.min(options?.readMaxBytes ?? Infinity, limitOf(method)) });
      return limited;
    },
  };
  return limited;
}

/** The answer for a method a service implementation leaves out, as connect-es's own router gives
 * it (Unimplemented): every Kapsel service implements all its methods, so this is the contract's
 * answer for a method added to a proto before its handler, not work left to do. */
function unimplemented(service: DescService, method: DescMethod) {
  return () => {
    throw new ConnectError(`${service.typeName}.${method.name} is not implemented`, Code.Unimplemented);
  };
}

/** gzip and brotli as Connect offers them, except that a body that is not valid compressed data
 * is the caller's mistake (InvalidArgument), never an Internal error. */
export const ACCEPTED_COMPRESSION: Compression[] = [compressionGzip, compressionBrotli].map((c) => ({
  name: c.name,
  compress: (bytes) => c.compress(bytes),
  async decompress(bytes, readMaxBytes) {
    try {
      return await c.decompress(bytes, readMaxBytes);
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.ResourceExhausted) throw e;
      throw new ConnectError(`the request body is not valid ${c.name} data`, Code.InvalidArgument);
    }
  },
}));
