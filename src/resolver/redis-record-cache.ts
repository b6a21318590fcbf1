/**
 * Record cache in Redis, shared by every process of the node. Each handle has a record key and a
 * generation key; invalidation bumps the generation, and a set is a Lua compare-and-set on it.
 * Redis trouble never fails a request: lookups become misses, and invalidations that could not
 * be delivered are retried until Redis answers again.
 */
import { Redis } from 'ioredis';
import type { HandleRecord } from '../handle/values.js';
import type { Logger } from '../infra/logger.js';
import type { CacheLookup, RecordCache } from './record-cache.js';

// Generations outlive any load that could race with them; after that a missing one reads as 0.
const GENERATION_TTL_SECONDS = 3600;
const RETRY_MS = 1000;

const SET_IF_GENERATION = `
local gen = redis.call('GET', KEYS[2]) or '0'
if gen == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0`;

const INVALIDATE = `
for i = 1, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[i + 1])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[1])
end
return #KEYS / 2`;

export class RedisRecordCache implements RecordCache {
  readonly kind = 'redis';
  private readonly pending = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly log: Logger,
  ) {
    redis.on('ready', () => void this.flushPending());
  }

  private recordKey(handle: string): string {
    return `${this.keyPrefix}rec:${handle}`;
  }

  private generationKey(handle: string): string {
    return `${this.keyPrefix}gen:${handle}`;
  }

  async get(handle: string): Promise<CacheLookup> {
    try {
      const [record, generation] = await this.redis.mget(this.recordKey(handle), this.generationKey(handle));
      if (record) return { hit: true, record: JSON.parse(record) as HandleRecord };
      return { hit: false, token: generation ?? '0' };
    } catch (err) {
      this.log.debug({ err }, 'redis cache lookup failed; reading from postgres');
      return { hit: false, token: undefined };
    }
  }

  async set(handle: string, record: HandleRecord, ttlSeconds: number, token: string | undefined): Promise<void> {
    if (token === undefined || ttlSeconds <= 0) return;
    try {
      await this.redis.eval(SET_IF_GENERATION, 2, this.recordKey(handle), this.generationKey(handle), token, JSON.stringify(record), ttlSeconds);
    } catch (err) {
      this.log.debug({ err }, 'redis cache store failed');
    }
  }

  async invalidate(handles: readonly string[]): Promise<void> {
    if (handles.length === 0) return;
    try {
      await this.send(handles);
    } catch (err) {
      for (const h of handles) this.pending.add(h);
      this.log.warn({ err: (err as Error).message, handles: handles.length }, 'redis invalidation failed; will retry');
      this.scheduleRetry();
    }
  }

  private async send(handles: readonly string[]): Promise<void> {
    const keys = handles.flatMap((h) => [this.recordKey(h), this.generationKey(h)]);
    await this.redis.eval(INVALIDATE, keys.length, ...keys, GENERATION_TTL_SECONDS);
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flushPending();
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  private async flushPending(): Promise<void> {
    if (this.pending.size === 0) return;
    const handles = [...this.pending];
    this.pending.clear();
    try {
      for (let i = 0; i < handles.length; i += 500) await this.send(handles.slice(i, i + 500));
      this.log.info({ handles: handles.length }, 'redis invalidations delivered after an outage');
    } catch {
      for (const h of handles) this.pending.add(h);
      this.scheduleRetry();
    }
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}
