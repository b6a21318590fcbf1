/** The bench's only direct use of Redis: is it there, and removing the keys its nodes wrote. */
import { Redis } from 'ioredis';

function connect(url: string): { redis: Redis; lastError: () => Error | undefined } {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  let last: Error | undefined;
  // Kept for the message: the awaited call only says "Connection is closed".
  redis.on('error', (err: Error) => (last = err));
  return { redis, lastError: () => last };
}

/** undefined when Redis answers PING, else why not. */
export async function redisProblem(url: string): Promise<string | undefined> {
  const { redis, lastError } = connect(url);
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return lastError()?.message || (err as Error).message || String(err);
  } finally {
    redis.disconnect();
  }
}

/** SCAN + DEL of every key under `prefix`; the number deleted. */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  const { redis } = connect(url);
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000);
      if (keys.length > 0) deleted += await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}

const escapeGlob = (s: string): string => s.replace(/[*?[\]\\]/g, '\\$&');
