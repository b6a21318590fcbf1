/**
 * The Redis server's size, for metrics: read when Prometheus scrapes, never on a request's path.
 * These are figures of the whole server and of the whole selected database, shared by every
 * process and REDIS_KEY_PREFIX using them: Redis keeps no count per key prefix, and counting one
 * would take a SCAN of the keyspace (or an index every store updates, which expiry and eviction
 * would silently make wrong).
 */
import type { Redis } from 'ioredis';

export interface RedisFigures {
  /** INFO memory used_memory: bytes the server's allocator holds. */
  usedMemory: number;
  /** INFO memory maxmemory: the server's bound (0: none). */
  maxMemory: number;
  /** The database this client selected (its index), and DBSIZE: its keys, O(1). */
  db: number;
  keys: number;
}

/** A scrape waits at most this long for Redis; a slow Redis leaves its figures out. */
export const REDIS_FIGURES_TIMEOUT_MS = 500;

function infoField(info: string, name: string): number | undefined {
  const at = info.indexOf(`\n${name}:`);
  if (at < 0) return undefined;
  const value = Number.parseInt(info.slice(at + name.length + 2), 10);
  return Number.isFinite(value) ? value : undefined;
}

/** undefined when Redis is not connected, answers late or answers something unreadable. */
export async function readRedisFigures(redis: Redis, timeoutMs = REDIS_FIGURES_TIMEOUT_MS): Promise<RedisFigures | undefined> {
  if (redis.status !== 'ready') return undefined;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, undefined);
  });
  const read = Promise.all([redis.info('memory'), redis.dbsize()]).then(([info, keys]) => {
    const text = `\n${info}`;
    const usedMemory = infoField(text, 'used_memory');
    const maxMemory = infoField(text, 'maxmemory');
    if (usedMemory === undefined || maxMemory === undefined) return undefined;
    return { usedMemory, maxMemory, db: redis.options.db ?? 0, keys };
  });
  try {
    return await Promise.race([read, late]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    read.catch(() => undefined); // the loser of the race may still reject (commandTimeout)
  }
}
