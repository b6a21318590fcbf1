/**
 * Stores behind @fastify/rate-limit. Each policy brings its own (the plugin's store option is a
 * dispatcher that hands every policy the store named in its options):
 * - LocalFirstStore for resolution and registration (through local-limits.ts, not the plugin):
 *   counts in the process, no I/O on the request path, and every RATE_LIMIT_SYNC_MS adds its
 *   counts to Redis (one pipelined script per window key) and learns the shared total, so
 *   processes sharing Redis share one budget within a sync interval. Redis away: each process
 *   keeps counting alone (fails open to a per-process budget).
 * - the plugin's RedisStore for onboarding, administration, statistics and audit: one Redis round
 *   trip per request, exact across processes. Onboarding is refused with 503 when Redis fails
 *   (fails closed: anonymous writes need a limit); the keyed ones skip the limit.
 */
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { coarseNow } from '../infra/coarse-clock.js';
import { AppError, ResponseCode } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';

type Callback = (err: Error | null, result?: { current: number; ttl: number }) => void;

export interface RateLimitStore {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void;
  child(options: unknown): RateLimitStore;
}

const require = createRequire(import.meta.url);
type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string) => RateLimitStore;
const PluginRedisStore = require('@fastify/rate-limit/store/RedisStore.js') as RedisStoreCtor;
const PluginLocalStore = require('@fastify/rate-limit/store/LocalStore.js') as new (ce: boolean, eb: boolean, cache: number) => RateLimitStore;

/** The plugin's own stores, for the policies that use them as they are. */
export function pluginRedisStore(redis: Redis, namespace: string): RateLimitStore {
  return new PluginRedisStore(false, false, redis, namespace);
}
export function pluginLocalStore(): RateLimitStore {
  return new PluginLocalStore(false, false, 50_000);
}

/** What the plugin's `store` option receives: every policy names its own backend store. */
export class DispatchingStore implements RateLimitStore {
  incr(_key: string, cb: Callback): void {
    cb(new Error('rate limit policy without a backend store'));
  }

  child(options: unknown): RateLimitStore {
    const backend = (options as { backend?: RateLimitStore }).backend;
    if (!backend) throw new Error('rate limit policy without a backend store');
    return backend;
  }
}

/** Turns a store error into 503 RATE_LIMIT_UNAVAILABLE: the policy fails closed. */
export function failClosed(store: RateLimitStore): RateLimitStore {
  return {
    incr(key, cb, timeWindow, max) {
      store.incr(key, (err, result) => {
        if (err) cb(new AppError('RATE_LIMIT_UNAVAILABLE', 'the rate limiter cannot be reached; retry shortly', 503, ResponseCode.SERVER_TOO_BUSY));
        else cb(null, result);
      }, timeWindow, max);
    },
    child: () => {
      throw new Error('not a plugin-level store');
    },
  };
}

interface Window {
  /** When this window ends (ms, coarse clock). */
  resetAt: number;
  /** Counted here and not yet added to Redis. */
  pending: number;
  /** Sent to Redis, answer not back yet. */
  inFlight: number;
  /** The shared total as Redis last told it (this process's synced counts included). */
  shared: number;
}

// Adds this process's count to the shared window and answers the total and the time left.
const ADD = `
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {total, ttl}`;

type AddingRedis = Redis & { snodeRateAdd(key: string, count: number, windowMs: number): Promise<[number, number]> };

export class LocalFirstStore implements RateLimitStore {
  private readonly windows = new Map<string, Window>();
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private windowMs = 60_000;
  private syncing: Promise<void> | undefined;
  private following: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis | undefined,
    private readonly namespace: string,
    syncMs: number,
    private readonly log?: Logger,
  ) {
    if (redis && !(redis as unknown as Partial<AddingRedis>).snodeRateAdd) redis.defineCommand('snodeRateAdd', { numberOfKeys: 1, lua: ADD });
    this.timer = setInterval(() => void this.sync(), syncMs);
    this.timer.unref();
  }

  incr(key: string, cb: Callback, timeWindow: number): void {
    cb(null, this.count(key, timeWindow));
  }

  /**
   * Counts one request of `key` in its window and answers the shared total so far and the
   * milliseconds left: synchronous, no I/O (the resolution hook calls it on every request).
   */
  count(key: string, timeWindow: number): { current: number; ttl: number } {
    this.windowMs = timeWindow;
    const now = coarseNow();
    let w = this.windows.get(key);
    if (w === undefined || now >= w.resetAt) {
      w = { resetAt: now + timeWindow, pending: 0, inFlight: 0, shared: 0 };
      this.windows.set(key, w);
    }
    w.pending += 1;
    if (this.redis) this.dirty.add(key);
    return { current: w.shared + w.inFlight + w.pending, ttl: w.resetAt - now };
  }

  child(): RateLimitStore {
    return this;
  }

  /**
   * Adds the pending counts to Redis and learns the shared totals. Tests call it instead of waiting.
   * A sync already running took its keys before counts made since: the caller gets one more after
   * it (shared by every caller meanwhile), so everything counted before the call is added.
   */
  sync(): Promise<void> {
    if (this.syncing) {
      const next = (): Promise<void> => {
        this.following = undefined;
        return this.sync();
      };
      this.following ??= this.syncing.then(next, next);
      return this.following;
    }
    this.syncing = this.syncOnce().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const now = coarseNow();
    for (const [key, w] of this.windows) if (now >= w.resetAt && w.pending === 0 && w.inFlight === 0) this.windows.delete(key);
    if (!this.redis || this.dirty.size === 0 || this.redis.status !== 'ready') return;
    const redis = this.redis as unknown as AddingRedis;
    const keys = [...this.dirty];
    this.dirty.clear();
    await Promise.all(keys.map(async (key) => {
      const w = this.windows.get(key);
      if (!w || w.pending === 0) return;
      const count = w.pending;
      w.pending = 0;
      w.inFlight += count;
      try {
        const [total, ttl] = await redis.snodeRateAdd(`${this.namespace}${key}`, count, this.windowMs);
        w.inFlight -= count;
        w.shared = total;
        w.resetAt = coarseNow() + ttl;
      } catch (err) {
        // Keep the count here; it goes out with the next sync.
        w.inFlight -= count;
        w.pending += count;
        this.dirty.add(key);
        this.log?.debug({ err: (err as Error).message }, 'rate limit counts not synced');
      }
    }));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
