/** Postgres pool and the transaction helper every repository write goes through. */
import pg from 'pg';
import type { Logger } from './logger.js';

export type Db = pg.Pool | pg.PoolClient;
export type Tx = pg.PoolClient;

export function createPool(url: string, max: number, log?: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30000 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (err) => log?.warn({ err: err.message }, 'an idle postgres connection failed; the pool replaces it'));
  // Nor one that is checked out: pg emits 'error' on a client whose connection ends (a terminated
  // backend, a restart) even while a query is running, and the pool only listens while the client
  // is idle. The query in flight fails with the same error, its caller handles that, and the pool
  // drops the client on release (it is no longer queryable).
  pool.on('connect', (client) => {
    client.on('error', (err) => log?.debug({ err: err.message }, 'a postgres connection in use failed'));
  });
  return pool;
}

/**
 * Runs `fn` in one transaction: committed when it returns, rolled back when it throws. `snapshot`
 * gives a read-only transaction whose statements all see one snapshot (figures read apart that
 * must agree).
 */
export async function withTransaction<T>(pool: pg.Pool, fn: (tx: Tx) => Promise<T>, snapshot = false): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query(snapshot ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A client whose ROLLBACK fails is in an unknown state: destroy it rather than reuse it.
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Postgres SQLSTATE of an error, if it is one. */
export function sqlState(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

export const UNIQUE_VIOLATION = '23505';
export const FOREIGN_KEY_VIOLATION = '23503';

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300']);

/**
 * Whether an error means Postgres is unreachable or refusing work (connection refused or lost,
 * shutting down, too many connections, pool wait timed out) rather than a bug: answered 503.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = sqlState(err);
  if (code !== undefined && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
  const message = err instanceof Error ? err.message : '';
  return /timeout exceeded when trying to connect|Connection terminated|connection timeout/i.test(message);
}
