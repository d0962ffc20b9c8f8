-- Retention and erasure: per-tenant windows, erasure records, and the marks and indexes the
-- purger works from. Receipts and the log (log_leaves, log_tiles, checkpoints) are never touched.

-- When a message's payload and headers were removed, and by which erasure (NULL: by retention).
-- Events carry the mark too: replay refuses an erased event by a condition on its own row, which
-- Postgres re-checks under the row lock, so a retry racing an erasure cannot slip through.
ALTER TABLE messages ADD COLUMN payload_erased_at timestamptz, ADD COLUMN erasure_id uuid;
ALTER TABLE events ADD COLUMN payload_erased_at timestamptz;

-- The purger's work lists: partial indexes that hold only rows with something left to remove, so
-- a pass walks what it can act on instead of everything it already cleared.
CREATE INDEX messages_payload_kept ON messages (tenant_id, received_at, id) WHERE payload_erased_at IS NULL;
CREATE INDEX delivery_attempts_excerpt_kept ON delivery_attempts (tenant_id, started_at, id) WHERE response_excerpt <> '';
-- Messages fanned out to no endpoint: no event will ever take them away, so they are found here.
CREATE INDEX messages_without_events ON messages (tenant_id, received_at, id) WHERE event_count = 0;

-- A tenant's own choices; a NULL window follows the operator's default. 0 = kept until erased.
CREATE TABLE retention_policies (
  tenant_id uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  payload_seconds bigint CHECK (payload_seconds >= 0),
  response_seconds bigint CHECK (response_seconds >= 0),
  event_seconds bigint CHECK (event_seconds >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per EraseEvents call: who asked (the key's id), what they selected (ids and a time
-- range, never content), what was removed. Kept for good: it is the answer to "was this erased,
-- when, at whose request".
CREATE TABLE erasures (
  id uuid PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  tenant_id uuid NOT NULL,
  api_key_id uuid,
  event_ids uuid[] NOT NULL DEFAULT '{}',
  message_id uuid,
  endpoint_id uuid,
  received_after timestamptz,
  received_before timestamptz,
  events_matched integer NOT NULL,
  events_erased integer NOT NULL,
  messages_erased integer NOT NULL,
  attempts_erased integer NOT NULL,
  events_skipped integer NOT NULL,
  erased_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erasures_tenant ON erasures (tenant_id, seq DESC);
