// A stock @grpc/grpc-js IngestService client built from proto/kapsel/v1/ingest.proto at run time,
// and a reader for the RetryInfo detail of a throttled call. The generic helpers (bearer, unary,
// failure, errorInfos) live in grpc.ts.
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { RetryInfoSchema, type RetryInfo } from "../../server/src/gen/google/rpc/error_details_pb.ts";
import { ROOT } from "./server.ts";

const definition = protoLoader.loadSync(path.join(ROOT, "proto/kapsel/v1/ingest.proto"), {
  keepCase: false, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [path.join(ROOT, "proto")],
});
const ingest = grpc.loadPackageDefinition(definition);
const IngestClient = ((ingest.kapsel as grpc.GrpcObject).v1 as grpc.GrpcObject).IngestService as grpc.ServiceClientConstructor;

export function ingestClient(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): grpc.Client {
  return new IngestClient(target, credentials, options);
}

/** The RetryInfo details of a gRPC error (google.rpc.Status in grpc-status-details-bin, read from the wire). */
export function retryInfos(err: grpc.ServiceError): RetryInfo[] {
  const raw = err.metadata.get("grpc-status-details-bin");
  if (raw.length !== 1 || !Buffer.isBuffer(raw[0])) return [];
  const infos: RetryInfo[] = [];
  const status = new BinaryReader(raw[0]);
  while (status.pos < status.len) {
    const [field, wireType] = status.tag();
    if (field !== 3 || wireType !== WireType.LengthDelimited) {
      status.skip(wireType);
      continue;
    }
    const any = new BinaryReader(status.bytes());
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array();
    while (any.pos < any.len) {
      const [f, wt] = any.tag();
      if (f === 1) typeUrl = any.string();
      else if (f === 2) value = any.bytes();
      else any.skip(wt);
    }
    if (typeUrl.endsWith("/google.rpc.RetryInfo")) infos.push(fromBinary(RetryInfoSchema, value));
  }
  return infos;
}
