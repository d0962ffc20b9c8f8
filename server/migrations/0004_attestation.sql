-- The attestation log: receipts as leaves, C2SP tlog-tiles of hashes, signed checkpoints, keys.

-- Attempts waiting to be sequenced. Filled by a trigger in the transaction that records the
-- attempt, so no attempt can be forgotten; emptied by the sequencer in the transaction that
-- appends its leaf.
CREATE TABLE log_queue (
  attempt_seq bigint PRIMARY KEY,
  attempt_id uuid NOT NULL,
  queued_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION queue_attempts_for_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO log_queue (attempt_seq, attempt_id) SELECT seq, id FROM new_attempts;
  RETURN NULL;
END $$;

CREATE TRIGGER delivery_attempts_to_log AFTER INSERT ON delivery_attempts
  REFERENCING NEW TABLE AS new_attempts FOR EACH STATEMENT EXECUTE FUNCTION queue_attempts_for_log();

CREATE TABLE log_leaves (
  idx bigint PRIMARY KEY,
  attempt_id uuid NOT NULL UNIQUE,
  tenant_id uuid NOT NULL,
  -- The canonical receipt bytes (RFC 8785 JSON): the leaf data.
  receipt bytea NOT NULL
);

-- C2SP tlog-tiles: tile (level, n) holds up to 256 hashes; a level-L hash covers 256^L leaves.
-- A partial tile is stored at its current width and grows in place: its prefix never changes.
CREATE TABLE log_tiles (
  level smallint NOT NULL,
  n bigint NOT NULL,
  hashes bytea NOT NULL CHECK (octet_length(hashes) % 32 = 0 AND octet_length(hashes) BETWEEN 32 AND 8192),
  PRIMARY KEY (level, n)
);

CREATE TABLE signing_keys (
  key_id bytea PRIMARY KEY,
  name text NOT NULL,
  public_key bytea NOT NULL,
  -- Ed25519 seed; NULL when the key comes from KAPSEL_SIGNING_KEY and is not stored.
  private_seed bytea,
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_until timestamptz
);

CREATE TABLE checkpoints (
  tree_size bigint PRIMARY KEY,
  root_hash bytea NOT NULL,
  note text NOT NULL,
  signed_at timestamptz NOT NULL,
  key_id bytea NOT NULL REFERENCES signing_keys (key_id)
);

-- One row: the sequenced tree size. Sequencing locks it (FOR UPDATE), so even two processes that
-- both believe they lead cannot interleave batches: indexes stay contiguous.
CREATE TABLE log_state (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  tree_size bigint NOT NULL DEFAULT 0
);
INSERT INTO log_state DEFAULT VALUES;
