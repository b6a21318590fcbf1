/** Resolution: cache, then Postgres; a cached record never outlives its smallest value TTL. */
import { minTtl, type HandleRecord } from '../handle/values.js';
import type { Handle } from '../handle/handle.js';
import type { RecordCache } from './record-cache.js';

/** Where records come from behind the cache (the registry's store). */
export interface RecordSource {
  find(prefix: string, suffix: string): Promise<HandleRecord | undefined>;
}

export interface ResolveOptions {
  /** auth=true: read the source of truth, skipping every cache. */
  bypassCache?: boolean;
}

export class ResolverService {
  constructor(
    private readonly source: RecordSource,
    private readonly cache: RecordCache,
    private readonly maxTtlSeconds: number,
  ) {}

  /** Seconds a record may be cached: its smallest value TTL, capped; 0 means not at all. */
  cacheTtl(record: HandleRecord): number {
    return Math.min(minTtl(record.values) ?? 0, this.maxTtlSeconds);
  }

  async resolve(handle: Handle, options: ResolveOptions = {}): Promise<HandleRecord | undefined> {
    if (options.bypassCache) return this.source.find(handle.prefix, handle.suffix);
    const lookup = await this.cache.get(handle.handle);
    if (lookup.hit) return lookup.record;
    const record = await this.source.find(handle.prefix, handle.suffix);
    if (record) {
      const ttl = this.cacheTtl(record);
      if (ttl > 0) await this.cache.set(handle.handle, record, ttl, lookup.token);
    }
    return record;
  }
}
