// Stock @grpc/grpc-js clients built at run time from proto/kapsel/v1/*.proto and the health proto
// shipped in grpc-health-check: what a backend team without our SDK does (README example).
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ROOT } from "../../../test/support/server.ts";

const definition = protoLoader.loadSync(
  ["kapsel/v1/ingest.proto", "kapsel/v1/management.proto", "kapsel/v1/attestation.proto", "health/v1/health.proto"],
  {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [path.join(ROOT, "proto"), path.join(ROOT, "node_modules/grpc-health-check/proto")],
  },
);
const loaded = grpc.loadPackageDefinition(definition) as any;

export interface GrpcJsClients {
  ingest: grpc.Client;
  management: grpc.Client;
  attestation: grpc.Client;
  health: grpc.Client;
  close(): void;
}

/** One channel (HTTP/2 connection) shared by all four clients, as grpc-js allows. */
export function grpcJsClients(target: string): GrpcJsClients {
  const management = new loaded.kapsel.v1.ManagementService(target, grpc.credentials.createInsecure()) as grpc.Client;
  const channelOverride = management.getChannel();
  const more = { channelOverride };
  const ingest = new loaded.kapsel.v1.IngestService(target, grpc.credentials.createInsecure(), more) as grpc.Client;
  const attestation = new loaded.kapsel.v1.AttestationService(target, grpc.credentials.createInsecure(), more) as grpc.Client;
  const health = new loaded.grpc.health.v1.Health(target, grpc.credentials.createInsecure(), more) as grpc.Client;
  return { ingest, management, attestation, health, close: () => management.close() };
}

/** Reads a grpc-js server stream to its end; rejects with the ServiceError it ends with. */
export function readAll<T>(call: grpc.ClientReadableStream<T>, onMessage: (m: T) => void = () => {}): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const messages: T[] = [];
    call.on("data", (m: T) => {
      messages.push(m);
      onMessage(m);
    });
    call.on("error", reject);
    call.on("end", () => resolve(messages));
  });
}
