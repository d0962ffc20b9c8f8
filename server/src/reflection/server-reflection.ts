// gRPC server reflection, grpc.reflection.v1 and its predecessor v1alpha (which older clients still
// ask for): grpcurl, `buf curl --reflect`, Postman and the like learn the API from the running
// server instead of from .proto files. It is a bidirectional stream, so it needs HTTP/2 (the
// one-port listener hands HTTP/2 connections to the h2c server, and TLS negotiates it by ALPN).
//
// Reflection is public, like the health checks: it describes only the API's schema — the same
// .proto files that are published in proto/ and in @kapsel/contracts — and reads nothing from the
// database, so a credential would protect nothing, while tools could no longer list the API before
// one is configured. Every stream is bounded: small request messages, a fixed number per stream.
import type { DescFile } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "@kapsel/contracts/reflection/v1";
import { ServerReflection as ServerReflectionV1alpha } from "@kapsel/contracts/reflection/v1alpha";
import { ReflectionIndex } from "./reflection-index.ts";

/** Requests one stream may make; describing the whole API takes a few dozen. */
export const MAX_REQUESTS_PER_STREAM = 1000;
/** The largest request message (a symbol or file name is far smaller). */
export const MAX_REQUEST_BYTES = 16 * 1024;

/** A reflection request, in the shape both protocol versions share. */
export interface ReflectionRequest {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

/** A reflection answer (the `message_response` oneof), in the shape both versions share. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: Code; errorMessage: string } };

/** Serves reflection (both versions) for every service `router` serves, including itself. */
export function registerReflection(router: ConnectRouter): void {
  // Built on the first request, when every service has been registered.
  let index: ReflectionIndex | undefined;
  const indexOf = () => (index ??= new ReflectionIndex(router.handlers.map((h) => h.service)));
  const options = { readMaxBytes: MAX_REQUEST_BYTES };
  router.service(ServerReflectionV1, { serverReflectionInfo: (requests) => answerEach(requests, indexOf()) }, options);
  router.service(ServerReflectionV1alpha, { serverReflectionInfo: (requests) => answerEach(requests, indexOf()) }, options);
}

async function* answerEach<R extends ReflectionRequest>(requests: AsyncIterable<R>, index: ReflectionIndex) {
  // Files already sent on this stream are not sent again as another file's imports.
  const sent = new Set<string>();
  let count = 0;
  for await (const request of requests) {
    if (++count > MAX_REQUESTS_PER_STREAM) {
      throw new ConnectError(`more than ${MAX_REQUESTS_PER_STREAM} requests on one reflection stream; open another`, Code.ResourceExhausted);
    }
    yield { validHost: request.host, originalRequest: request, messageResponse: answer(request, index, sent) };
  }
}

/** Answers one request; what cannot be found is an error answer on the stream, as the protocol has it. */
export function answer(request: ReflectionRequest, index: ReflectionIndex, sent: Set<string>): ReflectionAnswer {
  const files = (file: DescFile | undefined, what: string): ReflectionAnswer =>
    file ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.encode(file, sent) } } : notFound(what);
  const r = request.messageRequest;
  switch (r.case) {
    case "fileByFilename":
      return files(index.file(r.value), `file ${r.value}`);
    case "fileContainingSymbol":
      return files(index.fileContainingSymbol(r.value), `symbol ${r.value}`);
    case "fileContainingExtension":
      return files(index.fileContainingExtension(r.value.containingType, r.value.extensionNumber), `extension ${r.value.extensionNumber} of ${r.value.containingType}`);
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(r.value);
      return numbers ? { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: numbers } } : notFound(`message type ${r.value}`);
    }
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } };
    default:
      return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "the request asks for nothing" } };
  }
}

function notFound(what: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } };
}
