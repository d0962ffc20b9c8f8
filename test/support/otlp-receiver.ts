// A real OTLP/HTTP trace receiver for tests: a node:http server on loopback that takes
// `POST /v1/traces` (application/x-protobuf, gzip or not), decodes each ExportTraceServiceRequest
// with a small reader of the OTLP protobuf schema
// (opentelemetry/proto/collector/trace/v1/trace_service.proto and trace/v1/trace.proto: only the
// fields below; the rest is skipped by wire type) and keeps the spans.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export type AttributeValue = string | boolean | number | AttributeValue[] | undefined;

export interface ReceivedLink {
  traceId: string;
  spanId: string;
  attributes: Record<string, AttributeValue>;
}

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  traceState: string;
  name: string;
  /** SPAN_KIND_*: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttributeValue>;
  links: ReceivedLink[];
  /** STATUS_CODE_*: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  /** The resource's attributes (service.name, …). */
  resource: Record<string, AttributeValue>;
}

export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export interface OtlpReceiver {
  /** The base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  spans: ReceivedSpan[];
  /** Export requests received (decoded or not). */
  requests: number;
  close(): Promise<void>;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Reads a length-delimited message's fields, calling `field` for each (it must consume the
 * value or return false to have it skipped). */
function readMessage(bytes: Uint8Array, field: (r: BinaryReader, no: number, wire: WireType) => boolean | void): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (field(r, no, wire) === false) r.skip(wire, no);
  }
}

function anyValue(bytes: Uint8Array): AttributeValue {
  let value: AttributeValue;
  readMessage(bytes, (r, no) => {
    if (no === 1) value = r.string();
    else if (no === 2) value = r.bool();
    else if (no === 3) value = Number(r.int64());
    else if (no === 4) value = r.double();
    else if (no === 5) {
      const items: AttributeValue[] = [];
      readMessage(r.bytes(), (ar, ano) => (ano === 1 ? void items.push(anyValue(ar.bytes())) : false));
      value = items;
    } else return false;
  });
  return value;
}

function keyValue(bytes: Uint8Array, into: Record<string, AttributeValue>): void {
  let key = "";
  let value: AttributeValue;
  readMessage(bytes, (r, no) => {
    if (no === 1) key = r.string();
    else if (no === 2) value = anyValue(r.bytes());
    else return false;
  });
  into[key] = value;
}

function span(bytes: Uint8Array, resource: Record<string, AttributeValue>): ReceivedSpan {
  const s: ReceivedSpan = {
    traceId: "", spanId: "", parentSpanId: "", traceState: "", name: "", kind: 0, startNs: 0n, endNs: 0n,
    attributes: {}, links: [], status: { code: 0, message: "" }, resource,
  };
  readMessage(bytes, (r, no) => {
    switch (no) {
      case 1: s.traceId = hex(r.bytes()); break;
      case 2: s.spanId = hex(r.bytes()); break;
      case 3: s.traceState = r.string(); break;
      case 4: s.parentSpanId = hex(r.bytes()); break;
      case 5: s.name = r.string(); break;
      case 6: s.kind = r.int32(); break;
      case 7: s.startNs = BigInt(r.fixed64()); break;
      case 8: s.endNs = BigInt(r.fixed64()); break;
      case 9: keyValue(r.bytes(), s.attributes); break;
      case 13: {
        const link: ReceivedLink = { traceId: "", spanId: "", attributes: {} };
        readMessage(r.bytes(), (lr, lno) => {
          if (lno === 1) link.traceId = hex(lr.bytes());
          else if (lno === 2) link.spanId = hex(lr.bytes());
          else if (lno === 4) keyValue(lr.bytes(), link.attributes);
          else return false;
        });
        s.links.push(link);
        break;
      }
      case 15:
        readMessage(r.bytes(), (sr, sno) => {
          if (sno === 2) s.status.message = sr.string();
          else if (sno === 3) s.status.code = sr.int32();
          else return false;
        });
        break;
      default: return false;
    }
  });
  return s;
}

/** Decodes an ExportTraceServiceRequest into its spans. */
export function decodeTraces(body: Uint8Array): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  readMessage(body, (r, no) => {
    if (no !== 1) return false;
    const resource: Record<string, AttributeValue> = {};
    const scopeSpans: Uint8Array[] = [];
    readMessage(r.bytes(), (rr, rno) => {
      if (rno === 1) readMessage(rr.bytes(), (ar, ano) => (ano === 1 ? keyValue(ar.bytes(), resource) : false));
      else if (rno === 2) scopeSpans.push(rr.bytes());
      else return false;
    });
    for (const scope of scopeSpans) readMessage(scope, (sr, sno) => (sno === 2 ? void spans.push(span(sr.bytes(), resource)) : false));
  });
  return spans;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver: OtlpReceiver = { url: "", spans: [], requests: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      receiver.requests++;
      if (req.method !== "POST" || req.url !== "/v1/traces" || req.headers["content-type"] !== "application/x-protobuf") {
        res.writeHead(400).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      receiver.spans.push(...decodeTraces(body));
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  receiver.close = () => new Promise((resolve) => server.close(() => resolve()));
  return receiver;
}
