/**
 * The audit log: entries appended inside the transaction of the change they record, sealed into a
 * hash chain afterwards (in the order they are found committed), verified by walking the chain.
 */
import type pg from 'pg';
import type { Logger } from '../infra/logger.js';
import { withTransaction, type Db } from '../infra/postgres.js';
import { chainHash, GENESIS, type AuditEntry } from './entry.js';
import * as repo from './repository.js';

// One process seals at a time; the others skip the round.
const SEAL_LOCK = 7_340_005;
const SEAL_BATCH = 5000;
const VERIFY_PAGE = 5000;

/** What other modules need: append entries in their own transaction. */
export interface AuditTrail {
  append(db: Db, entries: readonly AuditEntry[]): Promise<void>;
}

/** AUDIT_LOG=false (bench comparison only): nothing is appended. */
export const NO_AUDIT: AuditTrail = { append: async () => undefined };

export interface VerifyResult {
  ok: boolean;
  /** Sealed entries checked. */
  checked: number;
  /** The chain's end after this check: its position and hash (hex). Publish it to anchor the log. */
  head: { seq: string; hash: string } | null;
  /** Committed entries not yet sealed (sealed by the next round). */
  unsealed: number;
  /** The first entry that does not match, and why. */
  firstMismatch?: { seq: string; id: string | null; reason: string };
}

export class AuditLog implements AuditTrail {
  private timer: NodeJS.Timeout | undefined;
  private sealing: Promise<number> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
  ) {}

  append(db: Db, entries: readonly AuditEntry[]): Promise<void> {
    return repo.appendEntries(db, entries);
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.seal().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'audit entries not sealed; will retry'));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sealing?.catch(() => undefined);
  }

  /** Chains every committed unsealed entry; returns how many. Rounds never overlap in a process. */
  seal(): Promise<number> {
    if (!this.sealing) {
      this.sealing = this.sealAll().finally(() => {
        this.sealing = undefined;
      });
    }
    return this.sealing;
  }

  private async sealAll(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.sealBatch();
      total += n;
      if (n < SEAL_BATCH) return total;
    }
  }

  private sealBatch(): Promise<number> {
    return withTransaction(this.pool, async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [SEAL_LOCK]);
      if (!rows[0]!.locked) return 0;
      const entries = await repo.unsealed(tx, SEAL_BATCH);
      if (entries.length === 0) return 0;
      const head = await repo.chainHead(tx);
      let seq = BigInt(head?.seq ?? '0');
      let previous = head?.hash ?? GENESIS;
      const seals = entries.map((entry) => {
        seq += 1n;
        const hash = chainHash(previous, seq.toString(), entry);
        const seal = { id: entry.id, seq: seq.toString(), prev: previous, hash };
        previous = hash;
        return seal;
      });
      await repo.writeSeals(tx, seals);
      return entries.length;
    });
  }

  /** Seals what is committed, then recomputes the whole chain; names the first entry that does not match. */
  /** onProgress hears the number of entries checked after each page (the command line shows it). */
  async verify(onProgress?: (checked: number) => void): Promise<VerifyResult> {
    await this.seal();
    const head = await repo.chainHead(this.pool);
    let expectedSeq = 1n;
    let previous: Buffer = GENESIS;
    let checked = 0;
    const fail = (seq: string, id: string | null, reason: string): VerifyResult => ({
      ok: false, checked, head: head ? { seq: head.seq, hash: head.hash.toString('hex') } : null, unsealed: -1,
      firstMismatch: { seq, id, reason },
    });
    let after = '0';
    for (;;) {
      const page = await repo.sealedPage(this.pool, after, VERIFY_PAGE);
      for (const entry of page) {
        if (BigInt(entry.seq) !== expectedSeq) {
          return this.withUnsealed(fail(expectedSeq.toString(), null, `entry ${expectedSeq} is missing (the next one found is ${entry.seq})`));
        }
        if (!entry.prevHash || !entry.prevHash.equals(previous)) {
          return this.withUnsealed(fail(entry.seq, entry.id, 'its link to the previous entry does not match (an earlier entry was removed or moved)'));
        }
        const hash = chainHash(previous, entry.seq, entry);
        if (!entry.hash || !entry.hash.equals(hash)) {
          return this.withUnsealed(fail(entry.seq, entry.id, 'its content does not match its hash (the entry was changed)'));
        }
        previous = hash;
        expectedSeq += 1n;
        checked += 1;
        after = entry.seq;
      }
      onProgress?.(checked);
      if (page.length < VERIFY_PAGE) break;
    }
    const last = (expectedSeq - 1n).toString();
    if (head && (head.seq !== last || !head.hash.equals(previous))) {
      return this.withUnsealed(fail(head.seq, null, `the chain ends at entry ${last}, but its recorded head is entry ${head.seq} (newest entries removed)`));
    }
    if (!head && checked > 0) return this.withUnsealed(fail(last, null, 'the chain head record is missing'));
    return this.withUnsealed({ ok: true, checked, head: head ? { seq: head.seq, hash: head.hash.toString('hex') } : null, unsealed: 0 });
  }

  private async withUnsealed(result: VerifyResult): Promise<VerifyResult> {
    return { ...result, unsealed: await repo.countUnsealed(this.pool) };
  }

  query(q: repo.AuditQuery): Promise<repo.AuditRecord[]> {
    return repo.queryEntries(this.pool, q);
  }
}
