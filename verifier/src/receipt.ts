// Delivery receipts (ATTESTATION.md §1): the leaf data of Kapsel's log, one per real HTTP
// delivery attempt. The verifier checks the exact bytes (canonical JSON) and the schema, so that
// what it reports is precisely what the log committed to.
import { bytesEqual } from "./bytes.ts";
import { canonicalJson } from "./canonical-json.ts";
import { VerifyError } from "./failure.ts";
import { decodeUtf8, encodeUtf8 } from "./utf8.ts";

/** How a delivery attempt ended. */
export type DeliveryOutcome = "delivered" | "http_error" | "timeout" | "network_error";

/** A version-1 delivery receipt. Member names are the wire names, in snake_case. */
export interface Receipt {
  readonly v: 1;
  readonly attempt_id: string;
  readonly event_id: string;
  readonly tenant_id: string;
  readonly endpoint_id: string;
  /** The destination URL as requested. */
  readonly url: string;
  /** 1-based attempt number for the event. */
  readonly attempt: number;
  /** Lowercase hex SHA-256 of the exact body bytes sent. */
  readonly payload_sha256: string;
  /** RFC 3339 UTC with milliseconds. */
  readonly started_at: string;
  readonly duration_ms: number;
  readonly outcome: DeliveryOutcome;
  /** HTTP status, `null` when no response arrived. */
  readonly status_code: number | null;
  /** Lowercase hex SHA-256 of the response body read, or `null`. */
  readonly response_sha256: string | null;
}

const OUTCOMES: readonly string[] = ["delivered", "http_error", "timeout", "network_error"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const UTC_MILLIS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Check = (value: unknown) => boolean;
const isUuid: Check = (v) => typeof v === "string" && UUID.test(v);
const isSha256: Check = (v) => typeof v === "string" && SHA256_HEX.test(v);
const isCount =
  (min: number): Check =>
  (v) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= min;
const orNull =
  (check: Check): Check =>
  (v) =>
    v === null || check(v);
// A timestamp is valid if it is a real instant that prints back identically (no 24:00, no Feb 30).
const isUtcMillis: Check = (v) =>
  typeof v === "string" && UTC_MILLIS.test(v) && !Number.isNaN(Date.parse(v)) && new Date(v).toISOString() === v;

/** Each member and the rule its value must meet, with the wording used in error messages. */
const SCHEMA: Readonly<Record<keyof Receipt, readonly [Check, string]>> = {
  v: [(v) => v === 1, "the integer 1"],
  attempt_id: [isUuid, "a UUID"],
  event_id: [isUuid, "a UUID"],
  tenant_id: [isUuid, "a UUID"],
  endpoint_id: [isUuid, "a UUID"],
  url: [(v) => typeof v === "string" && v.length > 0, "a non-empty string"],
  attempt: [isCount(1), "an integer ≥ 1"],
  payload_sha256: [isSha256, "64 lowercase hex digits"],
  started_at: [isUtcMillis, "RFC 3339 UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.sssZ)"],
  duration_ms: [isCount(0), "an integer ≥ 0"],
  outcome: [(v) => typeof v === "string" && OUTCOMES.includes(v), `one of ${OUTCOMES.join(", ")}`],
  status_code: [orNull((v) => typeof v === "number" && Number.isInteger(v) && v >= 100 && v <= 999), "an HTTP status (100–999) or null"],
  response_sha256: [orNull(isSha256), "64 lowercase hex digits or null"],
};

/**
 * Parses receipt bytes (a leaf). Accepts any bytes; throws `VerifyError`
 * `RECEIPT_NOT_CANONICAL` unless they are UTF-8 JSON byte-identical to their RFC 8785
 * serialization (duplicate keys, whitespace, escapes and number spellings all change the bytes),
 * and `RECEIPT_SCHEMA` unless the object has exactly the §1 members with valid values.
 */
export function parseReceipt(bytes: Uint8Array): Receipt {
  const text = decodeUtf8(bytes);
  let value: unknown;
  try {
    if (text === undefined) throw new SyntaxError("not UTF-8");
    value = JSON.parse(text);
  } catch {
    throw new VerifyError("RECEIPT_NOT_CANONICAL", "receipt is not UTF-8 JSON");
  }
  if (!bytesEqual(encodeUtf8(canonicalJson(value)), bytes)) {
    throw new VerifyError("RECEIPT_NOT_CANONICAL", "receipt bytes are not RFC 8785 canonical JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new VerifyError("RECEIPT_SCHEMA", "receipt is not a JSON object");
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!Object.hasOwn(SCHEMA, key)) throw new VerifyError("RECEIPT_SCHEMA", `receipt has unknown member "${key}"`);
  }
  for (const [key, [check, wanted]] of Object.entries(SCHEMA)) {
    if (!Object.hasOwn(record, key)) throw new VerifyError("RECEIPT_SCHEMA", `receipt lacks member "${key}"`);
    if (!check(record[key])) throw new VerifyError("RECEIPT_SCHEMA", `receipt member "${key}" is not ${wanted}`);
  }
  return record as unknown as Receipt;
}
