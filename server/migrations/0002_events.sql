-- Events (immutable payloads, status for queries), the hot delivery queue and idempotency keys.

CREATE TABLE events (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  endpoint_id uuid NOT NULL,
  payload bytea NOT NULL,
  content_type text NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}',
  idempotency_key text,
  request_id text NOT NULL DEFAULT '',
  received_at timestamptz NOT NULL DEFAULT now(),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
  attempt_count integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);
-- Listing: newest first per tenant, optionally by endpoint or status.
CREATE INDEX events_tenant_received ON events (tenant_id, received_at DESC, id DESC);
CREATE INDEX events_endpoint_received ON events (endpoint_id, received_at DESC, id DESC);
CREATE INDEX events_failed ON events (endpoint_id, received_at) WHERE status = 'failed';

-- The hot queue: only pending work, small rows, deleted on a final outcome. The claim changes no
-- indexed column except run_at on reschedule, so claims can be HOT updates.
CREATE TABLE delivery_jobs (
  event_id uuid PRIMARY KEY,
  endpoint_id uuid NOT NULL,
  run_at timestamptz NOT NULL DEFAULT now(),
  attempt integer NOT NULL DEFAULT 0,
  lease_until timestamptz,
  lease_id uuid
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);
CREATE INDEX delivery_jobs_due ON delivery_jobs (run_at);

-- Idempotency keys live in their own table so a key can expire (the window is configurable) while
-- its event stays: an insert replaces a key only when the old one is older than the window.
CREATE TABLE idempotency_keys (
  tenant_id uuid NOT NULL,
  endpoint_id uuid NOT NULL,
  key text NOT NULL,
  event_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, endpoint_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
