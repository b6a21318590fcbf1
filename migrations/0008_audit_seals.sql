-- The audit chain becomes insert-only. An audit_log row is written once, in the transaction of
-- the change it records, and never updated again: the sealer appends each committed entry's place
-- in the chain to audit_seals (seq, entry, hash) instead of rewriting the entry. Before this, the
-- sealer UPDATEd every entry, which was never a HOT update (seq was indexed) and so rewrote every
-- index entry of every row: about half of what the audit log cost a write.
--
-- The sealer finds committed entries by the transaction that wrote them (xid, the top-level
-- transaction id): every entry whose transaction had finished when a round's snapshot was taken is
-- sealed in that round, in (xid, id) order; entries of transactions then still running are sealed
-- by a later round. audit_sealer keeps where the last round stopped (horizon: its snapshot's xmax;
-- pending: the transactions it saw running) and the chain's head.
--
-- Entries sealed before this migration keep their seq, prev_hash and hash columns as they were
-- (nothing is lost, and they are no longer indexed); their seals are copied to audit_seals. The
-- hash of an entry is computed exactly as before, so old entries verify unchanged. Entries
-- committed and not yet sealed get xid 0, so the first round seals them.

ALTER TABLE audit_log ADD COLUMN xid xid8;
-- A volatile default set after the column exists: existing rows are not rewritten.
ALTER TABLE audit_log ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
UPDATE audit_log SET xid = '0' WHERE seq IS NULL;

CREATE TABLE audit_seals (
  seq       bigint PRIMARY KEY,
  entry_id  bigint NOT NULL UNIQUE,
  -- SHA-256(hash of seal seq-1 || the entry with its seq): see src/audit/entry.ts.
  hash      bytea NOT NULL
);
-- A hash missing from an old row (it never is, unless someone removed it) is kept empty, so verify
-- names that entry instead of the migration failing.
INSERT INTO audit_seals (seq, entry_id, hash) SELECT seq, id, COALESCE(hash, '\x'::bytea) FROM audit_log WHERE seq IS NOT NULL;

CREATE TABLE audit_sealer (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- The chain's head: its last seal (0 and 32 zero bytes before the first).
  seq        bigint NOT NULL,
  hash       bytea NOT NULL,
  -- Every entry with xid below horizon and not in pending is sealed.
  horizon    xid8 NOT NULL,
  pending    xid8[] NOT NULL,
  sealed_at  timestamptz
);
INSERT INTO audit_sealer (seq, hash, horizon, pending, sealed_at)
  SELECT seq, hash, '0', '{}', now() FROM audit_chain_head;
INSERT INTO audit_sealer (seq, hash, horizon, pending)
  SELECT 0, decode(repeat('00', 32), 'hex'), '0', '{}' WHERE NOT EXISTS (SELECT 1 FROM audit_sealer);
-- A sealer of an older build still running finds no head and seals nothing (it logs and retries).
DROP TABLE audit_chain_head;

ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_seq_key;
DROP INDEX IF EXISTS audit_log_unsealed_idx;
-- The sealer's way in: committed entries by transaction.
CREATE INDEX audit_log_xid_idx ON audit_log (xid, id);
-- The auditors' queries filter by target or actor and page newest first by id.
DROP INDEX IF EXISTS audit_log_target_idx;
CREATE INDEX audit_log_target_idx ON audit_log (target, id);
DROP INDEX IF EXISTS audit_log_actor_idx;
CREATE INDEX audit_log_actor_idx ON audit_log (actor_key, id);

COMMENT ON COLUMN audit_log.seq IS 'Chain position of an entry sealed before migration 0008 (kept as it was; audit_seals is the chain).';
COMMENT ON COLUMN audit_log.prev_hash IS 'Before migration 0008 only: the previous entry''s hash.';
COMMENT ON COLUMN audit_log.hash IS 'Before migration 0008 only: this entry''s hash (copied to audit_seals).';
COMMENT ON COLUMN audit_log.xid IS 'The writing transaction (pg_current_xact_id()): how the sealer knows when an entry is committed for good.';
