-- Streaming imports (issue 7): a job per uploaded (or command-line) file, written in chunks whose
-- progress commits with their rows, so a job resumes exactly where it stopped or is reported
-- failed; never silently half done.
CREATE TABLE imports (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  api_key_id  text NOT NULL,
  -- The caller as it was when the job started: role, enterprise and prefixes.
  actor       json NOT NULL,
  prefix      text COLLATE "C" NOT NULL,
  format      text NOT NULL CHECK (format IN ('ndjson', 'csv')),
  mode        text NOT NULL CHECK (mode IN ('create', 'upsert')),
  source      text NOT NULL CHECK (source IN ('upload', 'cli')),
  -- The file read: the spooled upload in the node's DATA_DIR, or the command line's file.
  file_path   text NOT NULL,
  state       text NOT NULL CHECK (state IN ('receiving', 'queued', 'running', 'done', 'failed')),
  bytes       bigint NOT NULL DEFAULT 0,
  -- Lines whose outcome is committed (written or rejected): where a resumed job starts.
  lines_read  bigint NOT NULL DEFAULT 0,
  written     bigint NOT NULL DEFAULT 0,
  rejected    bigint NOT NULL DEFAULT 0,
  error       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX imports_unfinished ON imports (created_at) WHERE state IN ('receiving', 'queued', 'running');

CREATE TABLE import_rejections (
  import_id uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
  line_no   bigint NOT NULL,
  code      text NOT NULL,
  reason    text NOT NULL,
  line      text NOT NULL,
  PRIMARY KEY (import_id, line_no)
);
