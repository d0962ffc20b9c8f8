// The generated contracts, re-exported so SDK users need no import paths into gen/: service
// descriptors (for createClient or a server), message types and schemas (for create()), enums.
export * from "./gen/kapsel/v1/ingest_pb.ts";
export * from "./gen/kapsel/v1/management_pb.ts";
export * from "./gen/kapsel/v1/attestation_pb.ts";
export { ErrorInfoSchema, RetryInfoSchema, type ErrorInfo, type RetryInfo } from "./gen/google/rpc/error_details_pb.ts";
