/**
 * Group commit for single writes. A durable commit waits for its WAL flush: on a disk that flushes
 * a few hundred times a second, one transaction per PUT caps registration at (flushes/s) x (pool
 * connections). The coalescer lets at most `maxInFlight` write transactions run; PUTs that arrive
 * meanwhile wait and go together in the next transaction (the batch path: one statement set and
 * one call per change sink for the whole group), each decided and answered as it would be alone,
 * and each acknowledged only after that transaction commits. A lone PUT on a quiet node starts at
 * once, so it waits for nothing.
 *
 * What a group shares: its commit, and its fate when the database fails (a sink error or a lost
 * connection fails every write of the group, as it would fail a batch). Two writes of the same
 * handle never share a group: the later one waits for the next.
 */
import type pg from 'pg';
import { errors } from '../infra/errors.js';
import { withTransaction } from '../infra/postgres.js';
import type { CacheInvalidation } from '../resolver/resolver-cache.js';
import { isRaceToRetry, RACE_ATTEMPTS, type BatchRegistry, type GroupedWrite, type ItemResult } from './batch.js';

interface Waiting {
  write: GroupedWrite;
  resolve(result: ItemResult): void;
  reject(err: unknown): void;
}

/** Postgres' deadlock_detected: two groups inserting the same new handles in crossed order. */
const isDeadlock = (err: unknown): boolean => (err as { code?: unknown })?.code === '40P01';


export class WriteCoalescer {
  private queue: Waiting[] = [];
  private inFlight = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly batches: BatchRegistry,
    private readonly cache: CacheInvalidation,
    /** Write transactions at once; the rest of the pool stays free for reads. */
    private readonly maxInFlight: number,
    private readonly maxGroup = 500,
  ) {}

  /** Resolves with the write's own result once its group has committed (or failed it alone). */
  write(write: GroupedWrite): Promise<ItemResult> {
    return new Promise<ItemResult>((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const group: Waiting[] = [];
      const later: Waiting[] = [];
      const handles = new Set<string>();
      for (const waiting of this.queue) {
        const handle = waiting.write.handle.handle;
        if (group.length < this.maxGroup && !handles.has(handle)) {
          handles.add(handle);
          group.push(waiting);
        } else {
          later.push(waiting);
        }
      }
      this.queue = later;
      this.inFlight += 1;
      let released = false;
      // The slot is freed once the group's transaction is over (committed or failed), before the
      // cache invalidation its writes still wait for: the next group's statement overlaps it.
      const release = () => {
        if (released) return;
        released = true;
        this.inFlight -= 1;
        this.pump();
      };
      void this.run(group, release).finally(release);
    }
  }

  /**
   * Whether to try the group as one statement of inserts first (BatchRegistry.insertGroup). A
   * create names a new handle by intent; an upsert usually does at registration time, but while
   * upserts keep finding their handles taken (re-registering), every 32nd group tries again.
   */
  private tryAllNew(writes: readonly GroupedWrite[]): boolean {
    if (writes.every((w) => w.op === 'create')) return true;
    this.upsertGroups += 1;
    return this.upsertsNew || this.upsertGroups % 32 === 0;
  }

  private upsertGroups = 0;
  private upsertsNew = true;

  private async allNew(writes: readonly GroupedWrite[]): Promise<{ results: ItemResult[]; written: string[] } | undefined> {
    const outcome = await this.batches.insertGroup(writes);
    if (writes.some((w) => w.op === 'upsert')) this.upsertsNew = outcome !== undefined;
    return outcome;
  }

  private async run(group: Waiting[], release: () => void): Promise<void> {
    // No ordering here: every insert path puts its rows in key order (batch-repository.ts), and
    // locks are taken in key order by the statement itself.
    const writes = group.map((w) => w.write);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const { results, written } = (this.tryAllNew(writes) ? await this.allNew(writes) : undefined)
          ?? await withTransaction(this.pool, (tx) => this.batches.applyGroup(tx, writes));
        release();
        // Acknowledged only once every process drops the handles (read-your-writes everywhere).
        if (written.length > 0) await this.cache.invalidate(written);
        group.forEach((waiting, i) => waiting.resolve(results[i]!));
        return;
      } catch (err) {
        const race = isRaceToRetry(err) || isDeadlock(err);
        if (race && attempt < RACE_ATTEMPTS) continue;
        // Races still lost after the retries: 503 (retry), as a batch answers them, not a 500.
        const answer = race ? errors.unavailable('concurrent writers kept changing these handles; retry') : err;
        for (const waiting of group) waiting.reject(answer);
        return;
      }
    }
  }
}
