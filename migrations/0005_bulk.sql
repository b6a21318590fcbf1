-- Bulk registration (issue 7): idempotent batch requests.

-- A batch request sent with an Idempotency-Key: claimed in the batch's own transaction (a
-- concurrent retry waits on the row, then reads the answer), answered once, kept for
-- IDEMPOTENCY_KEY_TTL seconds. Keys are scoped to the API key that sent them.
CREATE TABLE idempotency_keys (
  api_key_id   text NOT NULL,
  idem_key     text COLLATE "C" NOT NULL,
  request_hash text NOT NULL,
  status       integer,
  response     json,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (api_key_id, idem_key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
