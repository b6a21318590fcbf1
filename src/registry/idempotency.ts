/**
 * Idempotency-Key for batch writes. The key is claimed by inserting its row in the batch's own
 * transaction: a concurrent retry's insert waits on that row until the first commits (then reads
 * its answer) or rolls back (then goes ahead itself). So a batch applies once however many
 * retries race, and an answer is stored exactly when its writes committed.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../infra/canonical-json.js';
import { errors } from '../infra/errors.js';
import type { Db, Tx } from '../infra/postgres.js';

export const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7e]{1,255}$';

export interface StoredAnswer {
  status: number;
  body: unknown;
}

/** What a claim compares: the request's hash, and how it was hashed before (keys stored then). */
export interface RequestHash {
  hash: string;
  /** The hash of the JSON as the client ordered its keys: what keys claimed before canonical hashing hold. */
  legacy(): string;
}

/**
 * SHA-256 of the request as the node understood it, over its canonical JSON: a retry whose client
 * serialises the same body with its keys in another order is the same request.
 */
export function requestHash(body: unknown): RequestHash {
  return {
    hash: createHash('sha256').update(canonicalJson(body)).digest('hex'),
    legacy: () => createHash('sha256').update(JSON.stringify(body)).digest('hex'),
  };
}

/**
 * Claims `key` for this transaction. Returns undefined when the claim is new (go ahead), or the
 * answer stored by the request that claimed it first. The same key with another body is refused.
 */
export async function claim(tx: Tx, apiKeyId: string, key: string, request: RequestHash): Promise<StoredAnswer | undefined> {
  const { hash } = request;
  const inserted = await tx.query(
    `INSERT INTO idempotency_keys (api_key_id, idem_key, request_hash) VALUES ($1, $2, $3)
     ON CONFLICT (api_key_id, idem_key) DO NOTHING`,
    [apiKeyId, key, hash],
  );
  if (inserted.rowCount === 1) return undefined;
  const { rows } = await tx.query<{ request_hash: string; status: number | null; response: unknown }>(
    'SELECT request_hash, status, response FROM idempotency_keys WHERE api_key_id = $1 AND idem_key = $2',
    [apiKeyId, key],
  );
  const row = rows[0];
  if (!row || row.status === null) throw errors.unavailable('the first request with this Idempotency-Key has not finished; retry');
  if (row.request_hash !== hash && row.request_hash !== request.legacy()) {
    throw errors.conflict('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request body');
  }
  return { status: row.status, body: row.response };
}

/** Stores the answer of a claimed key (same transaction as the claim and the writes). */
export async function answer(tx: Tx, apiKeyId: string, key: string, stored: StoredAnswer): Promise<void> {
  await tx.query('UPDATE idempotency_keys SET status = $3, response = $4 WHERE api_key_id = $1 AND idem_key = $2', [
    apiKeyId,
    key,
    stored.status,
    JSON.stringify(stored.body),
  ]);
}

/** Forgets keys older than `ttlSeconds`. */
export async function expire(db: Db, ttlSeconds: number): Promise<number> {
  const result = await db.query("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)", [ttlSeconds]);
  return result.rowCount ?? 0;
}
