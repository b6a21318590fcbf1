-- Whether the node serving this database syncs upstream (UPSTREAM_URLS set at its last start).
-- Commands run beside it (snode import) read it, so their writes go through the outbox as the
-- node's own do even when the command's environment lacks UPSTREAM_URLS.
ALTER TABLE federation_sender ADD COLUMN upstream boolean NOT NULL DEFAULT false;
