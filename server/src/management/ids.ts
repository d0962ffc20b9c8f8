// Ids in requests are UUIDs; anything else is E1006 before it reaches SQL.
import { KapselError } from "../errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

export function requireUuid(value: string, field: string): string {
  if (!UUID.test(value)) throw new KapselError("E1006", `${field} must be a UUID`);
  return value.toLowerCase();
}
