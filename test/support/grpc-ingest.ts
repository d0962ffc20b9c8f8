// A stock @grpc/grpc-js IngestService client built from proto/kapsel/v1/ingest.proto at run time,
// and a reader for the RetryInfo detail of a throttled call. The generic helpers (bearer, unary,
// failure, errorInfos) live in grpc.ts.
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { RetryInfoSchema, type RetryInfo } from "@kapsel/contracts/error-details";
import { statusDetails } from "./grpc.ts";
import { ROOT } from "./server.ts";

const definition = protoLoader.loadSync(path.join(ROOT, "proto/kapsel/v1/ingest.proto"), {
  keepCase: false, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [path.join(ROOT, "proto")],
});
const ingest = grpc.loadPackageDefinition(definition);
const IngestClient = ((ingest.kapsel as grpc.GrpcObject).v1 as grpc.GrpcObject).IngestService as grpc.ServiceClientConstructor;

export function ingestClient(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): grpc.Client {
  return new IngestClient(target, credentials, options);
}

/** The RetryInfo details of a gRPC error. */
export function retryInfos(err: grpc.ServiceError): RetryInfo[] {
  return statusDetails(err, RetryInfoSchema);
}
