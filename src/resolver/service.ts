/**
 * Resolution through the tiers: L1 (this process) -> L2 (Redis) -> Postgres. Concurrent misses for
 * a handle share one load; a batch makes one Redis round trip and at most one Postgres query.
 * An entry lives no longer than its record's smallest value TTL, capped; TTL 0 is never cached;
 * not-found is cached briefly.
 */
import type { Handle } from '../handle/handle.js';
import { minTtl, type HandleRecord } from '../handle/values.js';
import { foundEntry, decodeFrame, encodeFrame, missingEntry, type CacheEntry } from './cache-entry.js';
import type { ResolverCache } from './resolver-cache.js';

/** Told once per resolved handle (statistics); must not do I/O. */
export interface ResolutionCounter {
  count(prefix: string, found: boolean, cached: boolean): void;
}

/** An entry and whether a cache tier (L1 or Redis) served it. */
interface Loaded {
  entry: CacheEntry;
  cached: boolean;
}

/** Where records come from behind the caches (the registry's store). */
export interface RecordSource {
  find(prefix: string, suffix: string): Promise<HandleRecord | undefined>;
  findMany(handles: readonly Handle[]): Promise<Map<string, HandleRecord>>;
}

export interface ResolverLimits {
  /** Longest an entry is cached, seconds. */
  maxTtlSeconds: number;
  /** How long not-found is cached, seconds (0: not at all). */
  negativeTtlSeconds: number;
}

export class ResolverService {
  private readonly inFlight = new Map<string, Promise<Loaded>>();

  constructor(
    private readonly source: RecordSource,
    private readonly cache: ResolverCache,
    private readonly limits: ResolverLimits,
    private readonly counter: ResolutionCounter = { count: () => undefined },
  ) {}

  /** Seconds a record may be cached: its smallest value TTL, capped; 0 means not at all. */
  cacheTtl(record: HandleRecord): number {
    return Math.min(minTtl(record.values) ?? 0, this.limits.maxTtlSeconds);
  }

  /**
   * One handle through every tier, counted. An L1 hit comes back as the entry itself (no promise,
   * no microtask): that is the whole fast path.
   */
  lookup(handle: Handle): CacheEntry | Promise<CacheEntry> {
    const hit = this.cache.l1.get(handle.handle);
    if (hit) {
      this.counter.count(handle.prefix, hit.found, true);
      return hit;
    }
    return this.resolveMany([handle]).then((entries) => entries[0]!);
  }

  async resolve(handle: Handle): Promise<CacheEntry> {
    return this.lookup(handle);
  }

  /** The source of truth, past every cache (`auth=true`); nothing is stored. */
  async fresh(handle: Handle): Promise<CacheEntry> {
    const record = await this.source.find(handle.prefix, handle.suffix);
    this.counter.count(handle.prefix, record !== undefined, false);
    return record ? foundEntry(record, 0) : missingEntry(handle.handle, 0);
  }

  /** Entries for many handles, in order, each counted; duplicates share one lookup. */
  async resolveMany(handles: readonly Handle[]): Promise<CacheEntry[]> {
    const pending = new Map<string, Promise<Loaded>>();
    const toLoad: Handle[] = [];
    for (const h of handles) {
      if (pending.has(h.handle)) continue;
      const cached = this.cache.l1.get(h.handle);
      if (cached) {
        pending.set(h.handle, Promise.resolve({ entry: cached, cached: true }));
        continue;
      }
      const running = this.inFlight.get(h.handle);
      if (running) {
        pending.set(h.handle, running);
        continue;
      }
      toLoad.push(h);
    }
    if (toLoad.length > 0) {
      const loads = this.load(toLoad);
      toLoad.forEach((h, i) => {
        const promise = loads.then((entries) => entries[i]!);
        this.inFlight.set(h.handle, promise);
        pending.set(h.handle, promise);
      });
      void loads
        .finally(() => {
          for (const h of toLoad) this.inFlight.delete(h.handle);
        })
        .catch(() => undefined);
    }
    const loaded = new Map<string, Loaded>();
    await Promise.all([...pending].map(async ([key, promise]) => loaded.set(key, await promise)));
    return handles.map((h) => {
      const { entry, cached } = loaded.get(h.handle)!;
      this.counter.count(h.prefix, entry.found, cached);
      return entry;
    });
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
      const entry = frame ? decodeFrame(h.handle, frame) : undefined;
      if (entry && entry.expiresAt > now) {
        results[i] = { entry, cached: true };
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
      const entry = record ? foundEntry(record, expiresAt) : missingEntry(h.handle, expiresAt);
      results[i] = { entry, cached: false };
      if (expiresAt > 0) {
        l1.set(entry, since);
        if (shared) void shared.set(h.handle, encodeFrame(entry), ttl * 1000, lookups[i]?.token);
      }
    }
    return results as Loaded[];
  }

  private async findOne(handle: Handle): Promise<Map<string, HandleRecord>> {
    const record = await this.source.find(handle.prefix, handle.suffix);
    return record ? new Map([[handle.handle, record]]) : new Map();
  }
}
