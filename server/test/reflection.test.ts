// gRPC server reflection on the one port: `buf curl --reflect` (the buf binary from npm) lists and
// calls the API of a running server with no .proto files, over both reflection versions; the
// protocol answers, checked with a gRPC client, are complete enough to build a registry from, and
// every stream is bounded. Reflection needs no credential and opens nothing else.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { AttestationService } from "@kapsel/contracts/attestation";
import { Health } from "@kapsel/contracts/health";
import { IngestService } from "@kapsel/contracts/ingest";
import { ManagementService } from "@kapsel/contracts/management";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "@kapsel/contracts/reflection/v1";
import { ServerReflection as ServerReflectionV1alpha } from "@kapsel/contracts/reflection/v1alpha";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_REQUEST_BYTES, MAX_REQUESTS_PER_STREAM } from "../src/reflection/server-reflection.ts";
import { createTenant } from "../../test/support/rpc.ts";
import { ADMIN_TOKEN, ROOT, startTestServer, type TestServer } from "../../test/support/server.ts";

const execBuf = promisify(execFile);
const BUF = path.join(ROOT, "node_modules/.bin/buf");

let server: TestServer;
let apiKey: string;

beforeAll(async () => {
  server = await startTestServer();
  apiKey = (await createTenant(server.url, ADMIN_TOKEN, "reflection")).apiKey;
});
afterAll(async () => {
  await server?.stop();
});

/** `buf curl` over gRPC with HTTP/2 prior knowledge, learning the schema by reflection. */
async function bufCurl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execBuf(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect", ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function methodsOf(...services: DescService[]): string[] {
  return services.flatMap((s) => s.methods.map((m) => `${s.typeName}/${m.name}`));
}

const SERVED = [Health, ServerReflection, ServerReflectionV1alpha, AttestationService, IngestService, ManagementService];

type Request = MessageInitShape<typeof ServerReflectionRequestSchema>;

/** One reflection stream (grpc.reflection.v1): sends the requests, collects the answers. */
async function reflect(requests: Request[], headers: Record<string, string> = {}): Promise<ServerReflectionResponse[]> {
  const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
  async function* send() {
    for (const r of requests) yield create(ServerReflectionRequestSchema, r);
  }
  const answers: ServerReflectionResponse[] = [];
  for await (const answer of client.serverReflectionInfo(send(), { headers })) answers.push(answer);
  return answers;
}

function files(answer: ServerReflectionResponse): FileDescriptorProto[] {
  if (answer.messageResponse.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${JSON.stringify(answer.messageResponse)}`);
  return answer.messageResponse.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

function errorOf(answer: ServerReflectionResponse): [number, string] {
  if (answer.messageResponse.case !== "errorResponse") throw new Error(`expected an error, got ${answer.messageResponse.case}`);
  return [answer.messageResponse.value.errorCode, answer.messageResponse.value.errorMessage];
}

describe("buf curl --reflect against a running server", () => {
  it("lists the served services and every method, with either reflection version", async () => {
    const services = SERVED.map((s) => s.typeName).sort();
    for (const version of ["grpc-v1", "grpc-v1alpha"]) {
      const list = await bufCurl(["--reflect-protocol", version, "--list-services", server.url]);
      expect([list.code, list.stdout.trim().split("\n")], version).toEqual([0, services]);
    }
    const methods = await bufCurl(["--list-methods", server.url]);
    expect(methods.stdout.trim().split("\n").sort()).toEqual(methodsOf(...SERVED).sort());
  });

  it("calls Health/Check without a credential, and GetPublicKeys with an API key (a Timestamp from an imported file)", async () => {
    const health = await bufCurl([`${server.url}/grpc.health.v1.Health/Check`, "-d", "{}"]);
    expect([health.code, JSON.parse(health.stdout)]).toEqual([0, { status: "SERVING" }]);
    const keys = await bufCurl(["--header", `authorization: Bearer ${apiKey}`, `${server.url}/kapsel.v1.AttestationService/GetPublicKeys`, "-d", "{}"]);
    expect(keys.code).toBe(0);
    const [first] = JSON.parse(keys.stdout).keys;
    expect(first.vkey).toMatch(/^kapsel\.localhost\/log\+[0-9a-f]{8}\+/);
    expect(new Date(first.validFrom).getTime()).toBeLessThanOrEqual(Date.now());
  });

  it("reflection opens nothing else: a Kapsel call without a key is still refused (E1004)", async () => {
    const refused = await bufCurl([`${server.url}/kapsel.v1.AttestationService/GetPublicKeys`, "-d", "{}"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unauthenticated/);
    expect(refused.stderr).toContain("E1004");
  });
});

describe("the reflection protocol", () => {
  it("answers a service, method, message, field and enum value with its file first, then its imports, each sent once per stream", async () => {
    const answers = await reflect([
      { messageRequest: { case: "fileContainingSymbol", value: "kapsel.v1.ManagementService.GetEvent" } },
      { messageRequest: { case: "fileContainingSymbol", value: "kapsel.v1.Event" } },
      { messageRequest: { case: "fileContainingSymbol", value: "kapsel.v1.Event.status" } },
      { messageRequest: { case: "fileContainingSymbol", value: "kapsel.v1.EVENT_STATUS_DELIVERED" } },
      { messageRequest: { case: "fileContainingSymbol", value: "kapsel.v1.IngestService" } },
    ]);
    expect(answers.map((a) => files(a).map((f) => f.name))).toEqual([
      ["kapsel/v1/management.proto", "google/protobuf/timestamp.proto"],
      ["kapsel/v1/management.proto"],
      ["kapsel/v1/management.proto"],
      ["kapsel/v1/management.proto"],
      ["kapsel/v1/ingest.proto"],
    ]);
    expect(answers[0]!.originalRequest?.messageRequest).toEqual({ case: "fileContainingSymbol", value: "kapsel.v1.ManagementService.GetEvent" });
  });

  it("sends descriptors a client can build a working registry from", async () => {
    const answers = await reflect([
      { messageRequest: { case: "listServices", value: "" } },
      ...[AttestationService, IngestService, ManagementService].map((s): Request => ({ messageRequest: { case: "fileContainingSymbol", value: s.typeName } })),
    ]);
    // Each answer is a file and then its imports; a FileDescriptorSet lists imports first.
    const set = create(FileDescriptorSetSchema, { file: answers.slice(1).flatMap((a) => files(a).reverse()) });
    const registry = createFileRegistry(set);
    expect(registry.getService("kapsel.v1.ManagementService")?.methods.map((m) => m.name)).toEqual(ManagementService.methods.map((m) => m.name));
    const event = ManagementService.file.messages.find((m) => m.name === "Event")!;
    expect(registry.getMessage("kapsel.v1.Event")?.fields.map((f) => f.name)).toEqual(event.fields.map((f) => f.name));
  });

  it("finds files by name; an unknown file, symbol or type is NOT_FOUND on a stream that stays usable", async () => {
    const answers = await reflect([
      { messageRequest: { case: "fileByFilename", value: "health/v1/health.proto" } },
      { messageRequest: { case: "fileByFilename", value: "kapsel/v1/secrets.proto" } },
      { messageRequest: { case: "fileContainingSymbol", value: "kapsel.v1.NoSuchThing" } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "kapsel.v1.NoSuchMessage" } },
      { messageRequest: { case: "fileContainingExtension", value: { containingType: "kapsel.v1.Event", extensionNumber: 1000 } } },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "kapsel.v1.Event" } },
      { messageRequest: { case: "listServices", value: "" } },
    ]);
    expect(files(answers[0]!).map((f) => f.name)).toEqual(["health/v1/health.proto"]);
    expect(answers.slice(1, 5).map(errorOf)).toEqual([
      [Code.NotFound, "file kapsel/v1/secrets.proto not found"],
      [Code.NotFound, "symbol kapsel.v1.NoSuchThing not found"],
      [Code.NotFound, "message type kapsel.v1.NoSuchMessage not found"],
      [Code.NotFound, "extension 1000 of kapsel.v1.Event not found"],
    ]);
    expect(answers[5]!.messageResponse).toEqual({ case: "allExtensionNumbersResponse", value: expect.objectContaining({ baseTypeName: "kapsel.v1.Event", extensionNumber: [] }) });
    expect(answers[6]!.messageResponse.case).toBe("listServicesResponse");
  });

  it("a request that asks for nothing is INVALID_ARGUMENT", async () => {
    const [answer] = await reflect([{ host: "example" }]);
    expect([answer!.validHost, errorOf(answer!)]).toEqual(["example", [Code.InvalidArgument, "the request asks for nothing"]]);
  });

  it("needs no credential, and a wrong one changes nothing", async () => {
    const request: Request = { messageRequest: { case: "listServices", value: "" } };
    const [without] = await reflect([request]);
    const [withWrongKey] = await reflect([request], { authorization: "Bearer ksk_not-a-key" });
    expect(withWrongKey!.messageResponse).toEqual(without!.messageResponse);
  });
});

describe("bounds on a reflection stream", () => {
  it(`a request message over ${MAX_REQUEST_BYTES / 1024} KiB ends the stream with RESOURCE_EXHAUSTED`, async () => {
    const err = await reflect([{ messageRequest: { case: "fileContainingSymbol", value: "x".repeat(MAX_REQUEST_BYTES + 1) } }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(ConnectError.from(err).code).toBe(Code.ResourceExhausted);
  });

  it(`answers ${MAX_REQUESTS_PER_STREAM} requests on one stream, then ends it with RESOURCE_EXHAUSTED`, async () => {
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    async function* many() {
      for (let i = 0; i <= MAX_REQUESTS_PER_STREAM; i++) yield create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
    }
    let answered = 0;
    const err = await (async () => {
      for await (const _ of client.serverReflectionInfo(many())) answered++;
    })().then(() => undefined, (e: unknown) => e);
    expect([answered, ConnectError.from(err).code]).toEqual([MAX_REQUESTS_PER_STREAM, Code.ResourceExhausted]);
  });
});
