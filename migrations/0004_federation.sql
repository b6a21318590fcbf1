-- Federation with the national top-level node. A secondary node uses the outbox and the sender
-- state; a node in the top-level role uses the node registry, prefix homes and escrow tables.

-- Secondary: every identifier change, appended in the write's own transaction. The wire sequence
-- number is given at send time by the one sender (in id order), not at commit: ids are handed out
-- before commit, so a smaller id can become visible after a larger one, and numbering at commit
-- would either skip it or make the sender wait on every open transaction.
CREATE TABLE federation_outbox (
  id             bigserial PRIMARY KEY,
  -- u: upsert, d: delete, e: end of a resync snapshot (version holds the snapshot's first seq).
  op             char(1) NOT NULL CHECK (op IN ('u', 'd', 'e')),
  prefix         text COLLATE "C" NOT NULL DEFAULT '',
  suffix         text COLLATE "C" NOT NULL DEFAULT '',
  version        bigint NOT NULL DEFAULT 0,
  handle_values  json,
  at             timestamptz NOT NULL DEFAULT now(),
  -- Wire sequence number once the sender has numbered it; rows at or below the acked sequence
  -- are deleted.
  seq            bigint UNIQUE
);
CREATE INDEX federation_outbox_unnumbered_idx ON federation_outbox (id) WHERE seq IS NULL;

-- Secondary: one row. next_seq is the next number to give; acked_seq the top-level node's answer.
-- Numbering and resync snapshots lock this row, so they never interleave.
CREATE TABLE federation_sender (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  next_seq    bigint NOT NULL DEFAULT 1,
  acked_seq   bigint NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO federation_sender DEFAULT VALUES;

-- Top-level: the secondary nodes it knows, with their public keys and last reported status.
CREATE TABLE federation_nodes (
  node_id            text COLLATE "C" PRIMARY KEY,
  node_prefix        text COLLATE "C" NOT NULL UNIQUE,
  algorithm          text NOT NULL CHECK (algorithm IN ('ed25519', 'sm2')),
  public_key         text NOT NULL,
  base_url           text NOT NULL DEFAULT '',
  version            text NOT NULL DEFAULT '',
  acked_seq          bigint NOT NULL DEFAULT 0,
  registered_at      timestamptz NOT NULL DEFAULT now(),
  last_heartbeat_at  timestamptz,
  last_status        jsonb,
  -- The state the monitor last logged ('up', 'down', 'unknown'); the answer itself is computed
  -- from last_heartbeat_at, so every process agrees without a timer.
  reported_state     text NOT NULL DEFAULT 'unknown'
);

-- Top-level: where each prefix is homed. A node's own node prefix is always here.
CREATE TABLE federation_prefixes (
  prefix      text COLLATE "C" PRIMARY KEY,
  node_id     text COLLATE "C" NOT NULL REFERENCES federation_nodes (node_id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX federation_prefixes_node_idx ON federation_prefixes (node_id);

-- Top-level: the escrow copy of every node's records, written only by that node's sync stream.
CREATE TABLE federation_escrow (
  node_id        text COLLATE "C" NOT NULL,
  prefix         text COLLATE "C" NOT NULL,
  suffix         text COLLATE "C" NOT NULL,
  version        bigint NOT NULL,
  handle_values  json NOT NULL,
  -- Sequence number of the event that last wrote the row (snapshot ends purge older rows).
  seq            bigint NOT NULL,
  PRIMARY KEY (node_id, prefix, suffix)
);

-- Top-level: signatures seen within the timestamp window, so a captured request cannot be replayed.
CREATE TABLE federation_seen_signatures (
  signature_hash  bytea PRIMARY KEY,
  seen_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX federation_seen_signatures_seen_idx ON federation_seen_signatures (seen_at);
