// Times between the contract (google.protobuf.Timestamp) and SQL, to the microsecond: Postgres
// keeps microseconds and a JS Date only milliseconds, and a page cursor or a time filter must not
// lose the difference. Rows carry their time as microseconds since the epoch in text.
import { create } from "@bufbuild/protobuf";
import { TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { sql } from "slonik";
import { KapselError } from "../errors.ts";

/** Postgres timestamps run from 4713 BC to 294276 AD; a request outside what a Date can hold is
 * refused before it reaches SQL (E1006). */
const MAX_SECONDS = 8_640_000_000_000n;

/** A column as microseconds since the epoch, for rows (`received_us`). */
export function microsOf(column: ReturnType<typeof sql.identifier>) {
  return sql.fragment`(extract(epoch FROM ${column}) * 1000000)::bigint::text`;
}

export function timestampFromMicros(us: string): Timestamp {
  const n = BigInt(us);
  return create(TimestampSchema, { seconds: n / 1_000_000n, nanos: Number(n % 1_000_000n) * 1000 });
}

/** A request's Timestamp as an exact SQL timestamptz. */
export function at(t: Timestamp, field: string) {
  if (t.seconds > MAX_SECONDS || t.seconds < -MAX_SECONDS || t.nanos < 0 || t.nanos > 999_999_999) {
    throw new KapselError("E1006", `${field} is out of range`);
  }
  return sql.fragment`(to_timestamp(${t.seconds.toString()}::bigint) + ${Math.floor(t.nanos / 1000)}::integer * interval '1 microsecond')`;
}

/** A cursor's microseconds as an exact SQL timestamptz. */
export function atMicros(us: string) {
  if (!/^\d{1,19}$/.test(us) || BigInt(us) > MAX_SECONDS * 1_000_000n) throw new KapselError("E1006", "page_token is not valid");
  return sql.fragment`(to_timestamp(0) + ${us}::bigint * interval '1 microsecond')`;
}
