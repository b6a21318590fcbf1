/**
 * The shared record cache (Redis, or the process without Redis). A lookup that misses returns a
 * token; a later set only lands if no invalidation happened in between, so a reader that loaded
 * an old record before a write committed can never put it back after the write's invalidation.
 */
import type { HandleRecord } from '../handle/values.js';

export type CacheLookup = { hit: true; record: HandleRecord } | { hit: false; token: string | undefined };

export interface RecordCache {
  readonly kind: 'redis' | 'memory';
  get(handle: string): Promise<CacheLookup>;
  /** Stores the record for ttlSeconds, unless `handle` was invalidated since the lookup that gave `token`. */
  set(handle: string, record: HandleRecord, ttlSeconds: number, token: string | undefined): Promise<void>;
  /** Drops the handles everywhere; never throws (failures are retried in the background). */
  invalidate(handles: readonly string[]): Promise<void>;
  /** Whether the backing store answers. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
