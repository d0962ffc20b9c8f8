-- Witness cosignatures of the log's checkpoints (C2SP tlog-cosignature lines returned by
-- add-checkpoint). A checkpoint whose cosignatures meet the configured quorum is a witnessed
-- checkpoint; its note is the stored note with these lines appended. Written only by
-- attestation/witnessing/witnessed-checkpoints.ts.
CREATE TABLE checkpoint_cosignatures (
  tree_size bigint NOT NULL REFERENCES checkpoints (tree_size),
  -- The witness's vkey (name, 0x04 key ID, public key): the identity verifiers configure.
  witness text NOT NULL,
  -- The signature line exactly as the witness returned it, final newline included.
  line text NOT NULL CHECK (line LIKE '— %' AND right(line, 1) = E'\n'),
  -- The time inside the cosignature (the witness's clock).
  cosigned_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tree_size, witness)
);

-- The last size each witness cosigned (where its next add-checkpoint starts from).
CREATE INDEX checkpoint_cosignatures_by_witness ON checkpoint_cosignatures (witness, tree_size DESC);
