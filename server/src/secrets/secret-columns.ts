// Every stored secret, by table and column: the one list that start-up sealing, master key
// rotation and the tests walk. A new secret column is added here (and sealed by its writer).
import type { SecretSlot } from "./secret-box.ts";

export interface SecretTable {
  table: string;
  /** The row key, bound into each value's ciphertext. */
  idColumn: string;
  idType: "uuid" | "bytea";
  columns: readonly string[];
}

export const SECRET_TABLES: readonly SecretTable[] = [
  // Outbound Standard Webhooks secrets (current and, for a day after a rotation, previous) and the
  // inbound verification secret of /ingest/{endpoint_id}.
  { table: "endpoints", idColumn: "id", idType: "uuid", columns: ["signing_secret", "previous_signing_secret", "source_secret"] },
  // Inbound verification secrets of /ingest/sources/{source_id}.
  { table: "sources", idColumn: "id", idType: "uuid", columns: ["secret", "previous_secret"] },
  // Generated log signing seeds (KAPSEL_SIGNING_KEY is never stored).
  { table: "signing_keys", idColumn: "key_id", idType: "bytea", columns: ["private_seed"] },
];

export const endpointSecret = (endpointId: string, column: "signing_secret" | "previous_signing_secret" | "source_secret"): SecretSlot =>
  ({ table: "endpoints", column, rowId: endpointId });

export const sourceSecret = (sourceId: string, column: "secret" | "previous_secret"): SecretSlot =>
  ({ table: "sources", column, rowId: sourceId });

export const signingSeed = (keyId: Buffer): SecretSlot => ({ table: "signing_keys", column: "private_seed", rowId: keyId.toString("hex") });
