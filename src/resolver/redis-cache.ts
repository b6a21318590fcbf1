/**
 * L2: entry frames in Redis, shared by every process of the node, and the invalidation channel.
 * Each handle has a frame key, and belongs to one of GENERATION_SHARDS generation counters (by a
 * hash of the handle). Invalidation deletes the frames, bumps their shards' generations and
 * publishes the handles in one script, so a process that hears the message can never read the old
 * frame afterwards; a store is a compare-and-set on the shard's generation, so a load that raced
 * with a write cannot put the old record back. (A write to another handle of the same shard only
 * makes a concurrent load skip its store: the answer is still right, merely not cached in Redis.
 * Counters per shard, not per handle, keep a bulk write from creating and expiring a Redis key for
 * every handle it writes.) Redis trouble never fails a request:
 * reads become misses, and invalidations that could not be delivered are retried.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../infra/logger.js';

/**
 * Generation counters: enough that a load rarely shares its shard with a concurrent write, few
 * enough to stay a fixed set of small keys that never expire (an invalidation of 500 handles bumps
 * about 400 of them, where per-handle counters created and expired 500 keys).
 */
export const GENERATION_SHARDS = 1024;
const RETRY_MS = 1000;
const INVALIDATION_BATCH = 500;
/**
 * Undelivered invalidations remembered one by one, at most. Past that (a long outage under bulk
 * writes) they are forgotten for a reset of the whole tier once Redis is back: every generation
 * bumped, every frame dropped, every process told to drop its L1. Memory stays bounded however
 * long Redis is away.
 */
export const MAX_PENDING_INVALIDATIONS = 100_000;
/** The invalidation message that stands for every handle. */
const RESET_MESSAGE = '"reset"';

const SET_IF_GENERATION = `
local gen = redis.call('GET', KEYS[2]) or '0'
if gen == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

// KEYS: the ARGV[1] frame keys, then their shards' generation keys (each once).
const INVALIDATE = `
local frames = tonumber(ARGV[1])
redis.call('DEL', unpack(KEYS, 1, frames))
for i = frames + 1, #KEYS do
  redis.call('INCR', KEYS[i])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return frames`;

type ScriptedRedis = Redis & {
  snodeSetIfGeneration(frameKey: string, genKey: string, token: string, frame: Buffer, ttlMs: number): Promise<number>;
  snodeInvalidate(...args: Array<string | number>): Promise<number>;
};

export interface SharedLookup {
  /** The frame, on a hit. */
  frame?: Buffer;
  /** On a miss: the generation to store against; undefined when Redis did not answer. */
  token?: string;
}

export interface InvalidationListener {
  /** Another process (or this one) wrote these handles. */
  handles(handles: string[]): void;
  /** The channel was lost and is back: messages may have been missed. */
  reset(): void;
}

export class RedisCache {
  private readonly redis: ScriptedRedis;
  private readonly channel: string;
  private readonly pending = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;
  private subscriber: Redis | undefined;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
    private readonly log: Logger,
    private readonly maxPending = MAX_PENDING_INVALIDATIONS,
  ) {
    redis.defineCommand('snodeSetIfGeneration', { numberOfKeys: 2, lua: SET_IF_GENERATION });
    redis.defineCommand('snodeInvalidate', { lua: INVALIDATE });
    this.redis = redis as ScriptedRedis;
    this.channel = `${keyPrefix}invalidate`;
    redis.on('ready', () => void this.flushPending());
  }

  private frameKey(handle: string): string {
    return `${this.keyPrefix}rec:${handle}`;
  }

  private generationKey(handle: string): string {
    return this.shardKey(generationShard(handle));
  }

  private shardKey(shard: number): string {
    return `${this.keyPrefix}gen:${shard}`;
  }

  /** One MGET for every handle: frames for hits, generations for misses. */
  async getMany(handles: readonly string[]): Promise<SharedLookup[]> {
    if (handles.length === 0) return [];
    try {
      const keys = handles.flatMap((h) => [this.frameKey(h), this.generationKey(h)]);
      const replies = await this.redis.mgetBuffer(...keys);
      return handles.map((_, i) => {
        const frame = replies[2 * i];
        if (frame) return { frame };
        const generation = replies[2 * i + 1];
        return { token: generation ? generation.toString() : '0' };
      });
    } catch (err) {
      this.log.debug({ err }, 'redis cache lookup failed; reading from postgres');
      return handles.map(() => ({}));
    }
  }

  /**
   * Stores a frame for ttlMs unless the handle was invalidated since the lookup that gave `token`.
   * Never rejects; the resolver does not wait for it.
   */
  async set(handle: string, frame: Buffer, ttlMs: number, token: string | undefined): Promise<void> {
    if (token === undefined || ttlMs <= 0) return;
    try {
      await this.redis.snodeSetIfGeneration(this.frameKey(handle), this.generationKey(handle), token, frame, Math.ceil(ttlMs));
    } catch (err) {
      this.log.debug({ err }, 'redis cache store failed');
    }
  }

  /** Drops the handles from Redis and tells every process; retried in the background on failure. */
  async invalidate(handles: readonly string[]): Promise<void> {
    if (handles.length === 0) return;
    try {
      for (let i = 0; i < handles.length; i += INVALIDATION_BATCH) await this.send(handles.slice(i, i + INVALIDATION_BATCH));
    } catch (err) {
      this.remember(handles);
      this.log.warn({ err: (err as Error).message, handles: handles.length }, 'redis invalidation failed; will retry');
      this.scheduleRetry();
    }
  }

  /** Keeps undelivered handles, or past MAX_PENDING_INVALIDATIONS, the need for a full reset. */
  private remember(handles: readonly string[]): void {
    if (this.overflowed > 0) {
      this.overflowed += handles.length;
      return;
    }
    for (const h of handles) this.pending.add(h);
    if (this.pending.size > this.maxPending) {
      this.overflowed = this.pending.size;
      this.pending.clear();
      this.log.warn({ handles: this.overflowed }, 'too many undelivered redis invalidations to keep: the whole cache tier will be reset when redis is back');
    }
  }

  /** Handles written whose invalidation Redis has not taken yet (counted, past the limit). */
  private overflowed = 0;

  /**
   * Every generation bumped first (a load racing this cannot store), then every frame dropped,
   * then every process told to drop its whole L1.
   */
  private async resetAll(): Promise<void> {
    const bump = this.redis.pipeline();
    for (let n = 0; n < GENERATION_SHARDS; n += 1) bump.incr(this.shardKey(n));
    const bumped = await bump.exec();
    const failed = bumped?.find(([err]) => err)?.[0];
    if (failed || !bumped) throw failed ?? new Error('the generation bump was not answered');
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.keyPrefix}rec:*`, 'COUNT', 1000);
      if (keys.length > 0) await this.redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    await this.redis.publish(this.channel, RESET_MESSAGE);
  }

  private async send(handles: readonly string[]): Promise<void> {
    const shards = new Set(handles.map((h) => this.generationKey(h)));
    const keys = [...handles.map((h) => this.frameKey(h)), ...shards];
    await this.redis.snodeInvalidate(keys.length, ...keys, handles.length, this.channel, JSON.stringify(handles));
  }

  /**
   * Delivers the invalidations still pending (Redis was unreachable when they were made), trying
   * for up to `withinMs`; answers how many are still undelivered. For a command about to exit
   * (snode import): its retries would die with it.
   */
  async deliverPending(withinMs: number): Promise<number> {
    const until = Date.now() + withinMs;
    while (this.undelivered > 0 && Date.now() < until) {
      await this.flushPending();
      if (this.undelivered > 0) await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(RETRY_MS, until - Date.now()))));
    }
    return this.undelivered;
  }

  /** Handles whose invalidation Redis has not taken yet. */
  get undelivered(): number {
    // (A flush in flight, from the retry timer say, has taken its handles out of `pending`.)
    return this.overflowed + this.pending.size + this.flushingHandles;
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flushPending();
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** One flush at a time (the reconnect, the retry timer and deliverPending may all ask at once). */
  private flushPending(): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private flushing: Promise<void> | undefined;

  private async flushOnce(): Promise<void> {
    if (this.overflowed > 0) {
      const count = this.overflowed;
      try {
        await this.resetAll();
      } catch {
        this.scheduleRetry();
        return;
      }
      // Invalidations that failed while it ran are counted on top: they call for another reset.
      this.overflowed -= count;
      this.log.info({ handles: count }, 'redis back: the whole cache tier was reset for the invalidations it could not take');
      return;
    }
    if (this.pending.size === 0) return;
    const handles = [...this.pending];
    this.pending.clear();
    this.flushingHandles = handles.length;
    try {
      for (let i = 0; i < handles.length; i += INVALIDATION_BATCH) await this.send(handles.slice(i, i + INVALIDATION_BATCH));
      this.log.info({ handles: handles.length }, 'redis invalidations delivered after an outage');
    } catch {
      this.remember(handles);
      this.scheduleRetry();
    } finally {
      this.flushingHandles = 0;
    }
  }

  /** Handles taken out of `pending` by the flush in flight: undelivered until it succeeds. */
  private flushingHandles = 0;

  /**
   * Listens on the invalidation channel with a connection of its own. The listener is told to
   * reset (drop the whole L1) whenever messages may have been missed: when the command connection
   * comes back after a loss, and when the subscriber is subscribed again after a loss (confirmed
   * by Redis, not merely reconnected: ioredis reports 'ready' before its resubscription is
   * answered). Each connection is tracked on its own, so the one that comes back last still
   * resets what was cached while it was away.
   */
  async listen(listener: InvalidationListener): Promise<void> {
    const subscriber = this.redis.duplicate({ enableOfflineQueue: true, lazyConnect: true, commandTimeout: undefined });
    this.subscriber = subscriber;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      try {
        if (message === RESET_MESSAGE) listener.reset();
        else listener.handles(JSON.parse(message) as string[]);
      } catch (err) {
        this.log.error({ err }, 'unreadable cache invalidation message; dropping the whole L1');
        listener.reset();
      }
    });
    const reset = (which: string) => {
      this.log.info({ connection: which }, 'redis back: dropping the in-process cache, invalidations may have been missed');
      listener.reset();
    };
    let subscriberLost = false;
    let commandsLost = false;
    subscriber.on('close', () => {
      subscriberLost = true;
    });
    subscriber.on('ready', () => {
      if (!subscriberLost) return;
      subscriberLost = false;
      // Answered after ioredis' own resubscription (same connection, in order): listening again.
      subscriber.subscribe(this.channel).then(
        () => reset('subscriber'),
        () => {
          subscriberLost = true; // lost again before it was answered: the next 'ready' resets
        },
      );
    });
    this.redis.on('close', () => {
      commandsLost = true;
    });
    this.redis.on('ready', () => {
      if (!commandsLost) return;
      commandsLost = false;
      reset('commands');
    });
    subscriber.on('error', () => undefined);
    try {
      await subscriber.connect();
      await subscriber.subscribe(this.channel);
    } catch (err) {
      // ioredis keeps reconnecting and resubscribes; until then the L1 is reset on return.
      subscriberLost = true;
      this.log.warn({ err: (err as Error).message }, 'redis invalidation channel not reachable at start; will keep trying');
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
    this.subscriber?.disconnect();
  }
}

/** The generation shard of a handle: FNV-1a over its UTF-16 code units, the same in every process. */
export function generationShard(handle: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < handle.length; i += 1) {
    h ^= handle.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % GENERATION_SHARDS;
}
