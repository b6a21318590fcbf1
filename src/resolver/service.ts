/**
 * Resolution through the tiers: L1 (this process) -> L2 (Redis) -> Postgres. Concurrent misses for
 * a handle share one load, and misses from concurrent requests are loaded together (one Redis
 * round trip and at most one Postgres query per round).
 * An entry lives no longer than its record's smallest value TTL, capped; TTL 0 is never cached;
 * not-found is cached briefly.
 */
import { InvalidHandleError, parseHandle, type Handle } from '../handle/handle.js';
import { AppError } from '../infra/errors.js';
import { minTtl, type HandleRecord } from '../handle/values.js';
import { foundEntry, decodeFrame, encodeFrame, missingEntry, ownFrame, type CacheEntry } from './cache-entry.js';
import type { ResolverCache } from './resolver-cache.js';

/** Told once per resolved handle (statistics); must not do I/O. */
export interface ResolutionCounter {
  count(prefix: string, found: boolean, cached: boolean): void;
  /** Many L1 hits of one prefix at once (a batch's run of one prefix). */
  countHits(prefix: string, found: number, notFound: number): void;
}

/** A batch item: its entry, why the string is not a handle, or why its owner node did not answer. */
export type ResolvedItem = CacheEntry | InvalidHandleError | AppError;

/** An entry, whether a cache tier (L1 or Redis) served it, and which tier. */
interface Loaded {
  entry: CacheEntry;
  cached: boolean;
  tier: Tier;
}

/** Where an answer came from, for the metrics: slot = tier * 2 + (found ? 0 : 1) in ResolverService.tiers. */
export const TIERS = ['l1', 'redis', 'postgres', 'upstream'] as const;
const L1 = 0;
const REDIS = 1;
const POSTGRES = 2;
const UPSTREAM = 3;
type Tier = typeof L1 | typeof REDIS | typeof POSTGRES | typeof UPSTREAM;

/** Where records come from behind the caches (the registry's store). */
export interface RecordSource {
  find(prefix: string, suffix: string): Promise<HandleRecord | undefined>;
  findMany(handles: readonly Handle[]): Promise<Map<string, HandleRecord>>;
}

/**
 * Records of prefixes homed on other nodes (federation), consulted on a miss instead of the local
 * store. Its answers are cached in this process only, under their TTLs and maxTtlSeconds.
 */
export interface UpstreamSource {
  /** true when the prefix is homed elsewhere; must not do I/O. */
  isForeign(prefix: string): boolean;
  find(handle: Handle, context?: ResolutionContext): Promise<{ record: HandleRecord | undefined; maxTtlSeconds?: number }>;
}

/**
 * What a request that may go to other nodes carries (federation/context.ts makes it): the hops it
 * arrived with (X-Snode-Hops), and the node whose escrow copy answered it, for X-Snode-Takeover.
 * A miss loaded for several requests at once uses the first one's.
 */
export interface ResolutionContext {
  readonly hops: number;
  takeover?: string;
}

export interface ResolverLimits {
  /** Longest an entry is cached, seconds. */
  maxTtlSeconds: number;
  /** How long not-found is cached, seconds (0: not at all). */
  negativeTtlSeconds: number;
}

/** A miss waiting for the next load round. */
interface Queued {
  handle: Handle;
  resolve(loaded: Loaded): void;
  reject(err: unknown): void;
}

/** A load of one handle that later misses may share. */
interface InFlight {
  promise: Promise<Loaded>;
  /** The L1 clock when it began. */
  since: number;
  /** Its place in the queue (a queued load; none for a fetch from another node). */
  queued?: Queued;
}

// Misses queued in one event-loop turn are loaded together, in rounds of at most this many.
const ROUND = 1000;

export class ResolverService {
  /**
   * Answers by tier and outcome since start (see TIERS): plain increments on the hot path, read
   * by the metrics when Prometheus scrapes.
   */
  readonly tiers = new Float64Array(TIERS.length * 2);
  /** Loads running, per handle, with the L1 clock when each began (a load older than the handle's last invalidation is not joined). */
  private readonly inFlight = new Map<string, InFlight>();
  private queued: Queued[] = [];
  private scheduled = false;

  constructor(
    private readonly source: RecordSource,
    private readonly cache: ResolverCache,
    private readonly limits: ResolverLimits,
    private readonly counter: ResolutionCounter = { count: () => undefined, countHits: () => undefined },
    private readonly upstream?: UpstreamSource,
  ) {}

  /** Seconds a record may be cached: its smallest value TTL, capped; 0 means not at all. */
  cacheTtl(record: HandleRecord): number {
    return Math.min(minTtl(record.values) ?? 0, this.limits.maxTtlSeconds);
  }

  /**
   * One handle through every tier, counted. An L1 hit comes back as the entry itself (no promise,
   * no microtask): that is the whole fast path.
   */
  /**
   * An L1 hit for a string as the caller sent it, counted; undefined when L1 does not hold it.
   * L1 keys are normalised handles and normalising one gives it back unchanged, so a hit on the
   * raw string is the hit parsing would have found: most callers send handles as stored.
   */
  hit(raw: string): CacheEntry | undefined {
    const hit = this.cache.l1.get(raw);
    if (hit) {
      this.tiers[L1 * 2 + (hit.found ? 0 : 1)]! += 1;
      this.counter.count(hit.prefix, hit.found, true);
    }
    return hit;
  }

  lookup(handle: Handle, context?: ResolutionContext): CacheEntry | Promise<CacheEntry> {
    const hit = this.cache.l1.get(handle.handle);
    if (hit) {
      this.tiers[L1 * 2 + (hit.found ? 0 : 1)]! += 1;
      this.counter.count(handle.prefix, hit.found, true);
      return hit;
    }
    return this.miss(handle, context).then(({ entry, cached, tier }) => {
      this.tiers[tier * 2 + (entry.found ? 0 : 1)]! += 1;
      this.counter.count(handle.prefix, entry.found, cached);
      return entry;
    });
  }

  /**
   * Whether the handle exists, through the caches like a lookup but not counted as a resolution
   * (the QR route checks that the node holds a handle before drawing it; statistics report
   * resolutions, and a printed code fetched again is not one).
   */
  async exists(handle: Handle, context?: ResolutionContext): Promise<boolean> {
    const hit = this.cache.l1.get(handle.handle);
    if (hit) return hit.found;
    return (await this.miss(handle, context)).entry.found;
  }

  /** The source of truth, past every cache (`auth=true`); nothing is stored. */
  async fresh(handle: Handle, context?: ResolutionContext): Promise<CacheEntry> {
    const foreign = this.upstream?.isForeign(handle.prefix) === true;
    const record = foreign ? (await this.upstream!.find(handle, context)).record : await this.source.find(handle.prefix, handle.suffix);
    this.tiers[(foreign ? UPSTREAM : POSTGRES) * 2 + (record !== undefined ? 0 : 1)]! += 1;
    this.counter.count(handle.prefix, record !== undefined, false);
    return record ? foundEntry(record, 0) : missingEntry(handle.handle, 0);
  }

  /**
   * Entries for many strings as callers sent them, in order, each counted; a string that is not a
   * handle gives its InvalidHandleError. Synchronous when L1 holds them all.
   */
  resolveMany(inputs: readonly string[], context?: ResolutionContext): ResolvedItem[] | Promise<ResolvedItem[]> {
    const results: ResolvedItem[] = new Array(inputs.length);
    const l1 = this.cache.l1;
    let waits: Array<Promise<void>> | undefined;
    // L1 hits are counted per run of one prefix (entries share one string per prefix, so the
    // comparison is a pointer's): one counter update for a batch of one enterprise's handles.
    let runPrefix = '';
    let runFound = 0;
    let runMissing = 0;
    for (let i = 0; i < inputs.length; i += 1) {
      const input = inputs[i]!;
      let hit = l1.get(input);
      let handle: Handle | undefined;
      if (!hit) {
        try {
          handle = parseHandle(input);
        } catch (err) {
          if (!(err instanceof InvalidHandleError)) throw err;
          results[i] = err;
          continue;
        }
        // Already looked up when the string was the normalised handle.
        if (handle.handle !== input) hit = l1.get(handle.handle);
      }
      if (hit) {
        results[i] = hit;
        if (hit.prefix !== runPrefix) {
          if (runFound + runMissing > 0) this.countHits(runPrefix, runFound, runMissing);
          runPrefix = hit.prefix;
          runFound = 0;
          runMissing = 0;
        }
        if (hit.found) runFound += 1;
        else runMissing += 1;
        continue;
      }
      const h = handle!;
      (waits ??= []).push(
        this.miss(h, context).then(
          ({ entry, cached, tier }) => {
            results[i] = entry;
            this.tiers[tier * 2 + (entry.found ? 0 : 1)]! += 1;
            this.counter.count(h.prefix, entry.found, cached);
          },
          (err: unknown) => {
            // A foreign handle whose owner cannot answer (504, 508) fails alone; anything else
            // (this node's database down) fails the batch.
            if (!(err instanceof AppError && this.upstream?.isForeign(h.prefix))) throw err;
            results[i] = err;
          },
        ),
      );
    }
    if (runFound + runMissing > 0) this.countHits(runPrefix, runFound, runMissing);
    return waits ? Promise.all(waits).then(() => results) : results;
  }

  private countHits(prefix: string, found: number, notFound: number): void {
    this.tiers[L1 * 2]! += found;
    this.tiers[L1 * 2 + 1]! += notFound;
    this.counter.countHits(prefix, found, notFound);
  }

  /**
   * Single flight and coalescing: a handle already loading shares that load; other misses wait
   * for the next turn of the event loop, and every miss queued by then (from any request) is
   * loaded together: one Redis MGET and at most one Postgres query per round.
   */
  private miss(handle: Handle, context: ResolutionContext | undefined): Promise<Loaded> {
    const running = this.inFlight.get(handle.handle);
    // A load that began before the handle was last invalidated may bring back what the write
    // replaced: a request made after that write's answer must not get it, so it loads anew.
    if (running && !this.cache.l1.invalidatedSince(handle.handle, running.since)) return running.promise;
    if (this.upstream?.isForeign(handle.prefix)) return this.missUpstream(handle, this.upstream, context);
    const since = this.cache.l1.begin();
    let queued!: Queued;
    const promise = new Promise<Loaded>((resolve, reject) => {
      queued = { handle, resolve, reject };
    });
    this.queued.push(queued);
    this.inFlight.set(handle.handle, { promise, since, queued });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushQueue());
    }
    return promise;
  }

  private flushQueue(): void {
    this.scheduled = false;
    const queued = this.queued;
    this.queued = [];
    for (let i = 0; i < queued.length; i += ROUND) {
      const round = queued.slice(i, i + ROUND);
      this.load(round.map((q) => q.handle)).then(
        (loaded) => {
          round.forEach((q, j) => {
            this.settled(q);
            q.resolve(loaded[j]!);
          });
        },
        (err: unknown) => {
          for (const q of round) {
            this.settled(q);
            q.reject(err);
          }
        },
      );
    }
  }

  /** A queued load is over: it leaves the in-flight map unless a newer load of its handle took its place. */
  private settled(q: Queued): void {
    const running = this.inFlight.get(q.handle.handle);
    if (running?.queued === q) this.inFlight.delete(q.handle.handle);
  }

  /** A foreign handle: one fetch per handle at a time, cached in L1 only. */
  private missUpstream(handle: Handle, upstream: UpstreamSource, context: ResolutionContext | undefined): Promise<Loaded> {
    const since = this.cache.l1.begin();
    const promise: Promise<Loaded> = upstream
      .find(handle, context)
      .then(({ record, maxTtlSeconds }): Loaded => {
        const ttl = Math.min(record ? this.cacheTtl(record) : this.limits.negativeTtlSeconds, maxTtlSeconds ?? Infinity);
        const expiresAt = ttl > 0 ? Date.now() + ttl * 1000 : 0;
        const entry = record ? foundEntry(record, expiresAt) : missingEntry(handle.handle, expiresAt);
        if (expiresAt > 0) this.cache.l1.set(entry, since);
        return { entry, cached: false, tier: UPSTREAM };
      })
      .finally(() => {
        if (this.inFlight.get(handle.handle) === running) this.inFlight.delete(handle.handle);
      });
    const running: InFlight = { promise, since };
    this.inFlight.set(handle.handle, running);
    return promise;
  }

  /** L2 then Postgres for handles not in L1; fills both tiers. */
  private async load(handles: readonly Handle[]): Promise<Loaded[]> {
    const l1 = this.cache.l1;
    const since = l1.begin();
    const shared = this.cache.shared;
    const lookups = shared ? await shared.getMany(handles.map((h) => h.handle)) : [];
    const results: Array<Loaded | undefined> = new Array(handles.length);
    const misses: number[] = [];
    const now = Date.now();
    handles.forEach((h, i) => {
      const frame = lookups[i]?.frame;
      const entry = frame ? decodeFrame(h.handle, l1.enabled ? ownFrame(frame) : frame) : undefined;
      if (entry && entry.expiresAt > now) {
        results[i] = { entry, cached: true, tier: REDIS };
        l1.set(entry, since);
      } else {
        misses.push(i);
      }
    });
    if (misses.length === 0) return results as Loaded[];

    const records =
      misses.length === 1
        ? await this.findOne(handles[misses[0]!]!)
        : await this.source.findMany(misses.map((i) => handles[i]!));
    const loadedAt = Date.now();
    for (const i of misses) {
      const h = handles[i]!;
      const record = records.get(h.handle);
      const ttl = record ? this.cacheTtl(record) : this.limits.negativeTtlSeconds;
      const expiresAt = ttl > 0 ? loadedAt + ttl * 1000 : 0;
      let entry = record ? foundEntry(record, expiresAt, shared !== undefined && expiresAt > 0) : missingEntry(h.handle, expiresAt);
      if (expiresAt > 0) {
        if (shared) {
          // The cached entry is the frame Redis gets: both encodings in one allocation of its own.
          const frame = encodeFrame(entry);
          entry = decodeFrame(h.handle, frame) ?? entry;
          void shared.set(h.handle, frame, ttl * 1000, lookups[i]?.token);
        }
        l1.set(entry, since);
      }
      results[i] = { entry, cached: false, tier: POSTGRES };
    }
    return results as Loaded[];
  }

  private async findOne(handle: Handle): Promise<Map<string, HandleRecord>> {
    const record = await this.source.find(handle.prefix, handle.suffix);
    return record ? new Map([[handle.handle, record]]) : new Map();
  }
}
