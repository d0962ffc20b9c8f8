-- Hardening: attempts that never left the process, and secrets sealed at rest.

-- An attempt that failed before a byte of it was sent (the request could not be written as HTTP,
-- or the destination policy refused the address): recorded and attested like any attempt, but it
-- says nothing about the destination, so circuit breakers leave it out.
ALTER TABLE delivery_attempts ADD COLUMN refused_locally boolean NOT NULL DEFAULT false;
