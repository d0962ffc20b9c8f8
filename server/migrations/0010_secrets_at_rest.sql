-- Migration 0010: secrets at rest.

-- Secrets are stored sealed (AES-256-GCM under the master key, bound to their table, column and
-- row; layout in server/src/secrets/secret-box.ts), so the columns hold bytes. Values written
-- before this migration are converted as they are and sealed in place by the server at its next
-- start (or by `kapsel migrate`); a plain-text value can never begin with the 0x00 byte that
-- marks a sealed one. Every writer supplies sealed bytes, so the columns keep no default.
ALTER TABLE endpoints
  ALTER COLUMN signing_secret TYPE bytea USING convert_to(signing_secret, 'UTF8'),
  ALTER COLUMN previous_signing_secret TYPE bytea USING convert_to(previous_signing_secret, 'UTF8'),
  ALTER COLUMN source_secret DROP DEFAULT,
  ALTER COLUMN source_secret TYPE bytea USING convert_to(source_secret, 'UTF8');
ALTER TABLE sources
  ALTER COLUMN secret DROP DEFAULT,
  ALTER COLUMN secret TYPE bytea USING convert_to(secret, 'UTF8'),
  ALTER COLUMN previous_secret TYPE bytea USING convert_to(previous_secret, 'UTF8');
-- signing_keys.private_seed is bytea already; a plain seed is 32 bytes, a sealed one longer.
