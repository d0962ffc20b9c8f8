// UUIDs: ids in requests must be UUIDs (anything else is E1006 before it reaches SQL), and the ids
// we make are UUIDv7 (RFC 9562): time-ordered, so inserts land at the right edge of the primary
// key index instead of splitting pages all over it.
import { randomFillSync } from "node:crypto";
import { KapselError } from "./errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

export function requireUuid(value: string, field: string): string {
  if (!UUID.test(value)) throw new KapselError("E1006", `${field} must be a UUID`);
  return value.toLowerCase();
}

const pool = Buffer.alloc(16 * 256);
let poolOffset = pool.length;
/** The last time and 12-bit sequence used, so ids made in this process always increase (RFC 9562
 * §6.2 method 1: a counter in rand_a; a full counter borrows the next millisecond). Then ids made
 * in one go — a message's events — sort in the order they were made. */
let lastMs = 0;
let sequence = 0;

export function uuidv7(nowMs = Date.now()): string {
  if (poolOffset === pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const b = pool.subarray(poolOffset, poolOffset + 16);
  poolOffset += 16;
  if (nowMs > lastMs) {
    lastMs = nowMs;
    sequence = b.readUInt16BE(6) & 0x07ff; // a random start, with room to count up
  } else if (++sequence > 0x0fff) {
    lastMs++;
    sequence = 0;
  }
  b.writeUIntBE(lastMs, 0, 6);
  b.writeUInt16BE(0x7000 | sequence, 6);
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
