-- Security: enterprise applications (onboarding), keys restricted to some prefixes, and the
-- tamper-evident audit log.

-- An enterprise's application to join the node. Pending until an admin approves (which creates or
-- reuses the enterprise, allocates a prefix and issues the first key) or rejects it with a reason.
CREATE TABLE enterprise_applications (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  uscc              char(18) NOT NULL,
  contact_name      text NOT NULL,
  contact_email     text NOT NULL,
  contact_phone     text NOT NULL DEFAULT '',
  industry_code     text NOT NULL,
  requested_prefix  text COLLATE "C",
  state             text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected')),
  reason            text,
  enterprise_id     uuid REFERENCES enterprises (id),
  prefix            text COLLATE "C",
  created_at        timestamptz NOT NULL DEFAULT now(),
  decided_at        timestamptz
);
-- One open application per enterprise code at a time.
CREATE UNIQUE INDEX enterprise_applications_pending_uscc ON enterprise_applications (uscc) WHERE state = 'pending';
CREATE INDEX enterprise_applications_state_idx ON enterprise_applications (state, created_at);

-- NULL: every prefix of the key's enterprise; otherwise only these (a subset of its prefixes).
ALTER TABLE api_keys ADD COLUMN prefixes text[] COLLATE "C";

-- Appended in the same transaction as the change it records; never updated except by the sealer,
-- which gives committed entries their place in the hash chain (seq, prev_hash, hash) in order.
-- Writers never touch a shared row: the chain is computed after commit, not inside the write.
CREATE TABLE audit_log (
  id             bigserial PRIMARY KEY,
  at             timestamptz NOT NULL DEFAULT now(),
  actor_key      text,
  actor_role     text NOT NULL,
  action         text NOT NULL,
  target         text NOT NULL,
  request_id     text,
  client_ip      text,
  before_digest  text,
  after_digest   text,
  detail         jsonb,
  seq            bigint UNIQUE,
  prev_hash      bytea,
  hash           bytea
);
CREATE INDEX audit_log_unsealed_idx ON audit_log (id) WHERE seq IS NULL;
CREATE INDEX audit_log_target_idx ON audit_log (target, at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_key, at);
-- Entries arrive in time order, so a BRIN index serves time ranges at almost no cost per insert.
CREATE INDEX audit_log_at_idx ON audit_log USING brin (at);

-- The end of the chain, so deleting the newest entries is detected too.
CREATE TABLE audit_chain_head (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seq        bigint NOT NULL,
  hash       bytea NOT NULL
);
