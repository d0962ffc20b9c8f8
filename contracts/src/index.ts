// The kapsel.v1 contracts in one import: service descriptors (for createClient or a server),
// message types and schemas (for create()), enums, and the google.rpc error details Kapsel sends.
export * from "./gen/kapsel/v1/ingest_pb.ts";
export * from "./gen/kapsel/v1/management_pb.ts";
export * from "./gen/kapsel/v1/attestation_pb.ts";
export { ErrorInfoSchema, RetryInfoSchema, type ErrorInfo, type RetryInfo } from "./gen/google/rpc/error_details_pb.ts";
