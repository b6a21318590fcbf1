-- Metadata templates (元数据模板, issue 8): per enterprise prefix and version, the items a record
-- that names the version in its value at index 1001 must follow. A version is frozen for good by
-- the first record write that names it (in_use, set in that write's own transaction, so the flag
-- and the record commit or roll back together); items are disabled, never deleted.
CREATE TABLE templates (
  prefix        text COLLATE "C" NOT NULL,
  version       text COLLATE "C" NOT NULL,
  description   text NOT NULL DEFAULT '',
  -- [{name, type, index, required, minLength?, maxLength?, enabled, description?}] in index order.
  items         json NOT NULL,
  -- Bumped by every change: a record write checked against one revision commits only while it is current.
  revision      integer NOT NULL DEFAULT 1,
  in_use        boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  first_used_at timestamptz,
  PRIMARY KEY (prefix, version)
);
