/**
 * The cache tiers behind one face: L1 in the process, L2 in Redis when there is one. Writers call
 * invalidate() after commit; the resolver reads and fills both tiers.
 */
import { L1Cache } from './l1-cache.js';
import type { RedisCache } from './redis-cache.js';

/** What the registry needs from the caches. */
export interface CacheInvalidation {
  /** Drops the handles from every tier of every process; never throws. */
  invalidate(handles: readonly string[]): Promise<void>;
}

export class ResolverCache implements CacheInvalidation {
  readonly l1: L1Cache;

  constructor(
    l1Bytes: number,
    /** L2, shared by every process; undefined in single-process mode. */
    readonly shared: RedisCache | undefined,
  ) {
    this.l1 = new L1Cache(l1Bytes);
  }

  get kind(): 'redis' | 'memory' {
    return this.shared ? 'redis' : 'memory';
  }

  /** Starts listening for other processes' invalidations (Redis mode). */
  async start(): Promise<void> {
    await this.shared?.listen({
      handles: (handles) => this.l1.invalidate(handles),
      reset: () => this.l1.clear(),
    });
  }

  async invalidate(handles: readonly string[]): Promise<void> {
    if (handles.length === 0) return;
    this.l1.invalidate(handles);
    await this.shared?.invalidate(handles); // never throws: undelivered invalidations are retried
  }

  /** Invalidations Redis could not take yet, delivered within `withinMs` if it answers; how many remain. */
  deliverPending(withinMs: number): Promise<number> {
    return this.shared?.deliverPending(withinMs) ?? Promise.resolve(0);
  }

  async ping(): Promise<boolean> {
    return this.shared ? this.shared.ping() : true;
  }

  async close(): Promise<void> {
    await this.shared?.close();
    this.l1.clear();
  }
}
