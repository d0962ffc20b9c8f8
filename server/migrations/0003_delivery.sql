-- Delivery: attempt history (append-only; what a receipt needs), circuit breakers, and the
-- bookkeeping the queue needs for manual retries.

-- Attempt numbers are per event; a manual retry starts a new round of max_attempts.
ALTER TABLE delivery_jobs ADD COLUMN round_start integer NOT NULL DEFAULT 0;

CREATE TABLE delivery_attempts (
  id uuid PRIMARY KEY,
  -- Attempt order for the attestation sequencer.
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  event_id uuid NOT NULL,
  tenant_id uuid NOT NULL,
  endpoint_id uuid NOT NULL,
  url text NOT NULL,
  attempt integer NOT NULL,
  payload_sha256 text NOT NULL,
  started_at timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('delivered', 'http_error', 'timeout', 'network_error')),
  status_code integer,
  response_sha256 text,
  error text NOT NULL DEFAULT '',
  response_excerpt text NOT NULL DEFAULT '',
  request_id text NOT NULL DEFAULT '',
  -- False when the job's lease had passed to another worker before this outcome was written: the
  -- attempt happened (and is recorded) but did not decide the job.
  decided boolean NOT NULL DEFAULT true,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_event ON delivery_attempts (event_id, attempt);
CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (endpoint_id, started_at DESC);

CREATE TABLE circuit_breakers (
  endpoint_id uuid PRIMARY KEY,
  state text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
  consecutive_failures integer NOT NULL DEFAULT 0,
  opened_at timestamptz,
  -- While open: when probing may start.
  retry_at timestamptz,
  -- While half-open: probes claimed and not yet decided.
  probes integer NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
