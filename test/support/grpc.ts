// A plain @grpc/grpc-js client, built from the .proto files at run time the way a backend team
// without our SDK would do it, plus a decoder for the rich error details in grpc-status-details-bin.
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ErrorInfoSchema, type ErrorInfo } from "@kapsel/contracts/error-details";
import { ROOT } from "./server.ts";

const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

function load(file: string, includeDirs: string[]): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, { ...LOADER_OPTIONS, includeDirs }));
}

const management = load(path.join(ROOT, "proto/kapsel/v1/management.proto"), [path.join(ROOT, "proto")]);
const health = load(path.join(ROOT, "node_modules/grpc-health-check/proto/health/v1/health.proto"), []);

type Constructor = grpc.ServiceClientConstructor;
export const ManagementClient = ((management.kapsel as grpc.GrpcObject).v1 as grpc.GrpcObject).ManagementService as Constructor;
export const HealthClient = ((health.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject;

export function healthClient(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): grpc.Client {
  return new (HealthClient.Health as Constructor)(target, credentials, options);
}

export function managementClient(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): grpc.Client {
  return new ManagementClient(target, credentials, options);
}

export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

/** Calls a unary method; resolves with the response or rejects with the grpc-js ServiceError. */
export function unary<T = any>(client: grpc.Client, method: string, request: unknown, metadata = new grpc.Metadata()): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as any)[method](request, metadata, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: T) => {
      if (err) reject(err);
      else resolve(res);
    });
  });
}

/** Resolves with the rejection of a promise that must fail. */
export async function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("expected the call to fail");
}

/**
 * The details of one message type in a gRPC error. grpc-status-details-bin holds a
 * google.rpc.Status {int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3};
 * we have no generated Status, so its fields are read from the wire here.
 */
export function statusDetails<Desc extends DescMessage>(err: grpc.ServiceError, schema: Desc): MessageShape<Desc>[] {
  const raw = err.metadata.get("grpc-status-details-bin");
  if (raw.length !== 1 || !Buffer.isBuffer(raw[0])) return [];
  const found: MessageShape<Desc>[] = [];
  const status = new BinaryReader(raw[0]);
  while (status.pos < status.len) {
    const [field, wireType] = status.tag();
    if (field !== 3 || wireType !== WireType.LengthDelimited) {
      status.skip(wireType);
      continue;
    }
    const any = new BinaryReader(status.bytes());
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array(0);
    while (any.pos < any.len) {
      const [f, wt] = any.tag();
      if (f === 1) typeUrl = any.string();
      else if (f === 2) value = any.bytes();
      else any.skip(wt);
    }
    if (typeUrl.endsWith(`/${schema.typeName}`)) found.push(fromBinary(schema, value));
  }
  return found;
}

/** The ErrorInfo details of a gRPC error. */
export function errorInfos(err: grpc.ServiceError): ErrorInfo[] {
  return statusDetails(err, ErrorInfoSchema);
}
