/** In-process record cache for single-process mode (no REDIS_URL), bounded in bytes. */
import { LRUCache } from 'lru-cache';
import type { HandleRecord } from '../handle/values.js';
import type { CacheLookup, RecordCache } from './record-cache.js';

export class MemoryRecordCache implements RecordCache {
  readonly kind = 'memory';
  private readonly records: LRUCache<string, string>;
  /** Invalidation clock per recently written handle; a load older than the entry may not be stored. */
  private readonly invalidatedAt = new LRUCache<string, number>({ max: 100_000, ttl: 10 * 60_000 });
  private clock = 0;

  constructor(maxBytes: number) {
    this.records = new LRUCache<string, string>({
      maxSize: Math.max(maxBytes, 1),
      // UTF-16 code units, close enough to the heap cost of the string.
      sizeCalculation: (value, key) => (value.length + key.length) * 2 || 1,
    });
  }

  async get(handle: string): Promise<CacheLookup> {
    const cached = this.records.get(handle);
    if (cached !== undefined) return { hit: true, record: JSON.parse(cached) as HandleRecord };
    return { hit: false, token: String(this.clock) };
  }

  async set(handle: string, record: HandleRecord, ttlSeconds: number, token: string | undefined): Promise<void> {
    if (token === undefined || ttlSeconds <= 0) return;
    if ((this.invalidatedAt.get(handle) ?? -1) > Number(token)) return;
    this.records.set(handle, JSON.stringify(record), { ttl: ttlSeconds * 1000 });
  }

  async invalidate(handles: readonly string[]): Promise<void> {
    for (const handle of handles) {
      this.clock += 1;
      this.invalidatedAt.set(handle, this.clock);
      this.records.delete(handle);
    }
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.records.clear();
  }
}
