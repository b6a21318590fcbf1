-- Tenancy: enterprises, their prefixes, API keys; and the identifiers themselves.

CREATE TABLE enterprises (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  uscc        char(18) NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prefixes (
  prefix         text COLLATE "C" PRIMARY KEY,
  enterprise_id  uuid NOT NULL REFERENCES enterprises (id),
  state          text NOT NULL DEFAULT 'active' CHECK (state IN ('pending', 'active', 'disabled', 'rejected')),
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prefixes_enterprise_idx ON prefixes (enterprise_id);

CREATE TABLE api_keys (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- HMAC-SHA256 of the key under the server secret; the key itself is never stored.
  key_hash       bytea NOT NULL UNIQUE,
  -- The first characters of the key, so an operator can tell keys apart in a listing.
  key_hint       text NOT NULL,
  role           text NOT NULL CHECK (role IN ('admin', 'enterprise', 'auditor')),
  enterprise_id  uuid REFERENCES enterprises (id),
  label          text NOT NULL DEFAULT '',
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz,
  revoked_at     timestamptz,
  last_used_at   timestamptz,
  CHECK ((role = 'enterprise') = (enterprise_id IS NOT NULL))
);
CREATE INDEX api_keys_enterprise_idx ON api_keys (enterprise_id);

-- One row per identifier. The primary key leads with the prefix so the table can later be
-- hash-partitioned (or Citus-distributed) by prefix without changing any key. No foreign key to
-- prefixes: an admin may register under any prefix below the node prefix, and a distributed
-- table should not reference a local one. Values are json, not jsonb: json keeps the text as
-- written, so a record resolves with its keys in the order they were registered.
CREATE TABLE identifiers (
  prefix         text COLLATE "C" NOT NULL,
  suffix         text COLLATE "C" NOT NULL,
  handle_values  json NOT NULL,
  version        bigint NOT NULL DEFAULT 1 CHECK (version > 0),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (prefix, suffix)
);
