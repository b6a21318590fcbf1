/**
 * API keys already checked, in process, so a keyed request costs one HMAC and a map lookup rather
 * than a Postgres query. Any tenancy change (a key revoked, a prefix disabled or allocated) clears
 * it on every process through the change bus; a load that started before a clear is not stored,
 * so a revoked key cannot slip back in. Entries also age out after KEY_CACHE_MS.
 */
import { LRUCache } from 'lru-cache';
import { coarseNow } from '../infra/coarse-clock.js';
import type { KeyIdentity } from './repository.js';

interface Entry {
  identity: KeyIdentity | null;
  /** When the key itself expires (ms), or Infinity. */
  expiresAt: number;
  loadedAt: number;
}

export class KeyCache {
  private readonly entries = new LRUCache<string, Entry>({ max: 20_000 });
  private generation = 0;

  constructor(private readonly maxAgeMs: number) {}

  /** The identity (null: known not to be a live key), or undefined when it must be loaded. */
  get(hash: string): KeyIdentity | null | undefined {
    const entry = this.entries.get(hash);
    if (!entry) return undefined;
    const now = coarseNow();
    if (now - entry.loadedAt >= this.maxAgeMs) return undefined;
    if (entry.identity && now >= entry.expiresAt) return null;
    return entry.identity;
  }

  /** Call before loading; pass the token to set(). */
  begin(): number {
    return this.generation;
  }

  set(hash: string, identity: KeyIdentity | null, token: number): void {
    if (this.maxAgeMs === 0 || token !== this.generation) return;
    this.entries.set(hash, { identity, expiresAt: identity?.expiresAt ?? Infinity, loadedAt: coarseNow() });
  }

  clear(): void {
    this.generation += 1;
    this.entries.clear();
  }
}
