-- Tenants, their API keys and their endpoints.

CREATE TABLE tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Monotonic sequence for stable cursor pagination.
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  name text NOT NULL,
  rate_limit_per_second double precision,
  rate_limit_burst integer,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL,
  -- SHA-256 of the full secret; the secret itself is never stored.
  secret_sha256 bytea NOT NULL UNIQUE,
  prefix text NOT NULL,
  scopes text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'manage', 'read'] AND cardinality(scopes) > 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, seq);

CREATE TABLE endpoints (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  url text NOT NULL,
  description text NOT NULL DEFAULT '',
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text NOT NULL DEFAULT '',
  allow_http boolean NOT NULL DEFAULT false,
  source_scheme text NOT NULL DEFAULT 'none'
    CHECK (source_scheme IN ('none', 'hmac_sha256', 'github', 'stripe', 'standard_webhooks')),
  source_secret text NOT NULL DEFAULT '',
  source_header text NOT NULL DEFAULT 'x-signature',
  source_tolerance_seconds integer NOT NULL DEFAULT 300,
  kept_headers text[] NOT NULL DEFAULT '{}',
  max_attempts integer NOT NULL DEFAULT 10 CHECK (max_attempts BETWEEN 1 AND 50),
  timeout_ms integer NOT NULL DEFAULT 15000 CHECK (timeout_ms BETWEEN 100 AND 120000),
  -- Outbound Standard Webhooks secret (whsec_…); the previous one keeps signing until
  -- previous_secret_expires_at after a rotation.
  signing_secret text NOT NULL,
  previous_signing_secret text,
  previous_secret_expires_at timestamptz,
  secret_rotated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_tenant ON endpoints (tenant_id, seq) WHERE deleted_at IS NULL;
