// createKapselClient for Node: gRPC (HTTP/2), Connect (HTTP/1.1 or HTTP/2) or gRPC-Web over
// connect-node's transports. Plain `http://` URLs use HTTP/2 with prior knowledge (h2c), which is
// what Kapsel's one-port listener expects from gRPC clients.
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { interceptorsFor, kapselClient, type CommonClientOptions, type KapselClient } from "./kapsel-client.ts";

export type NodeTransportKind = "grpc" | "connect" | "grpc-web";

export interface KapselClientOptions extends CommonClientOptions {
  /** The protocol (default `connect`). gRPC needs HTTP/2. */
  transport?: NodeTransportKind;
  /** HTTP version for Connect and gRPC-Web (default `1.1`); gRPC always uses `2`. */
  httpVersion?: "1.1" | "2";
  /** Binary protobuf instead of JSON for the Connect protocol (default true). */
  useBinaryFormat?: boolean;
}

export function createKapselClient(options: KapselClientOptions): KapselClient {
  const kind = options.transport ?? "connect";
  const httpVersion = kind === "grpc" ? "2" : (options.httpVersion ?? "1.1");
  if (kind === "grpc" && options.httpVersion === "1.1") {
    throw new TypeError("gRPC needs HTTP/2 (trailers); use transport \"connect\" or \"grpc-web\" for HTTP/1.1");
  }
  const common = {
    baseUrl: options.baseUrl,
    interceptors: interceptorsFor(options),
    defaultTimeoutMs: options.defaultTimeoutMs,
    useBinaryFormat: options.useBinaryFormat ?? true,
  };
  // One session manager per client, so close() can end its connection.
  const sessions = httpVersion === "2" ? new Http2SessionManager(options.baseUrl) : undefined;
  let transport: Transport;
  if (kind === "grpc") {
    transport = createGrpcTransport({ ...common, sessionManager: sessions });
  } else if (httpVersion === "2") {
    const create = kind === "connect" ? createConnectTransport : createGrpcWebTransport;
    transport = create({ ...common, httpVersion: "2", sessionManager: sessions });
  } else {
    const create = kind === "connect" ? createConnectTransport : createGrpcWebTransport;
    transport = create({ ...common, httpVersion: "1.1" });
  }
  return kapselClient(transport, () => sessions?.abort());
}
