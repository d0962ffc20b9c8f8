-- Messages and fan-out: what a caller sends once (payload, type, channels) is a message; each
-- destination endpoint gets an event that points at it. Sources are inbound URLs for webhook
-- senders. Endpoints subscribe to event types and channels.

CREATE TABLE messages (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  event_type text NOT NULL DEFAULT '',
  channels text[] NOT NULL DEFAULT '{}',
  payload bytea NOT NULL,
  content_type text NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}',
  idempotency_key text,
  -- The source it came in through (NULL for the RPCs and /ingest/{endpoint_id}).
  source_id uuid,
  request_id text NOT NULL DEFAULT '',
  event_count integer NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_tenant_received ON messages (tenant_id, received_at DESC, id DESC);
CREATE INDEX messages_tenant_type ON messages (tenant_id, event_type, received_at DESC, id DESC);

-- Every existing event becomes a message of its own, with the same id.
INSERT INTO messages (id, tenant_id, payload, content_type, headers, idempotency_key, request_id, event_count, received_at)
  SELECT id, tenant_id, payload, content_type, headers, idempotency_key, request_id, 1, received_at FROM events;
ALTER TABLE events ADD COLUMN message_id uuid;
UPDATE events SET message_id = id;
ALTER TABLE events ALTER COLUMN message_id SET NOT NULL;
ALTER TABLE events DROP COLUMN payload, DROP COLUMN content_type, DROP COLUMN headers,
  DROP COLUMN idempotency_key, DROP COLUMN request_id;
CREATE INDEX events_message ON events (message_id);

-- Idempotency keys name a message now, within a scope: the endpoint for endpoint-targeted ingest,
-- the source for a source URL, the nil UUID for fan-out by the RPCs (per tenant). Old keys named
-- events, whose messages now have the same ids.
ALTER TABLE idempotency_keys RENAME COLUMN endpoint_id TO scope_id;
ALTER TABLE idempotency_keys RENAME COLUMN event_id TO message_id;

ALTER TABLE endpoints
  ADD COLUMN event_types text[] NOT NULL DEFAULT '{}',
  ADD COLUMN channels text[] NOT NULL DEFAULT '{}';

CREATE TABLE sources (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL,
  scheme text NOT NULL DEFAULT 'none'
    CHECK (scheme IN ('none', 'hmac_sha256', 'github', 'stripe', 'standard_webhooks')),
  secret text NOT NULL DEFAULT '',
  -- The secret before the last rotation keeps verifying until previous_secret_expires_at.
  previous_secret text,
  previous_secret_expires_at timestamptz,
  header text NOT NULL DEFAULT 'x-signature',
  tolerance_seconds integer NOT NULL DEFAULT 300,
  event_type_from text NOT NULL DEFAULT 'none'
    CHECK (event_type_from IN ('none', 'header', 'json_pointer', 'github', 'stripe', 'shopify', 'standard_webhooks')),
  event_type_header text NOT NULL DEFAULT '',
  event_type_pointer text NOT NULL DEFAULT '',
  channels text[] NOT NULL DEFAULT '{}',
  secret_rotated_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX sources_tenant ON sources (tenant_id, seq) WHERE deleted_at IS NULL;
