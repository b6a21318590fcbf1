/**
 * The audit log: entries appended inside the transaction of the change they record (and never
 * touched again), sealed into a hash chain afterwards by appending seals, verified by walking the
 * chain. How a round finds committed entries without making writers share anything: repository.ts
 * and migrations/0008_audit_seals.sql.
 */
import type pg from 'pg';
import type { Logger } from '../infra/logger.js';
import type { Db } from '../infra/postgres.js';
import type { SinkStatement } from '../registry/change-sink.js';
import { chainHash, chainHashOf, GENESIS, type AuditEntry, type ChainHead } from './entry.js';
import * as repo from './repository.js';

// One process seals at a time (a session lock, taken before the round's snapshot: see sealRound).
const SEAL_LOCK = 7_340_005;
const SEAL_PAGE = 5000;
const VERIFY_PAGE = 5000;

/** What other modules need: append entries in their own transaction. */
export interface AuditTrail {
  append(db: Db, entries: readonly AuditEntry[]): Promise<void>;
  /** The same as one statement to run with others (undefined: nothing to append). */
  statement(entries: readonly AuditEntry[]): SinkStatement | undefined;
}

/** AUDIT_LOG=false (bench comparison only): nothing is appended. */
export const NO_AUDIT: AuditTrail = { append: async () => undefined, statement: () => undefined };

export interface HeadResult extends ChainHead {
  /** `<seq>:<hash>`, as verify's anchor takes it. */
  anchor: string;
  /** When the entry at the head was written, and when the chain last grew. */
  at: string | null;
  sealedAt: string | null;
}

export interface VerifyResult {
  ok: boolean;
  /** Sealed entries checked. */
  checked: number;
  /** The chain's end after this check: its position and hash (hex). Publish it to anchor the log. */
  head: ChainHead | null;
  /** Committed entries not yet sealed (sealed by the next round). */
  unsealed: number;
  /** The anchor checked, when one was given: the chain must pass through it. */
  anchor?: ChainHead & { ok: boolean };
  /** The first entry that does not match, and why (seq null: an entry outside the chain). */
  firstMismatch?: { seq: string | null; id: string | null; reason: string };
}

const hex = (b: Buffer): string => b.toString('hex');

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

  statement(entries: readonly AuditEntry[]): SinkStatement | undefined {
    return entries.length === 0 ? undefined : repo.appendStatement(entries);
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

  /** Seals every committed entry not yet in the chain; returns how many. Rounds never overlap in a process. */
  seal(): Promise<number> {
    if (!this.sealing) {
      this.sealing = this.sealRound().finally(() => {
        this.sealing = undefined;
      });
    }
    return this.sealing;
  }

  /**
   * One round, in one REPEATABLE READ transaction, so that every query sees the snapshot whose
   * running transactions are recorded as pending. The lock is a session lock taken before the
   * transaction starts: the previous holder has committed when we get it, so our snapshot sees its
   * seals (a transaction-scoped lock taken inside the transaction could follow its snapshot).
   */
  private async sealRound(): Promise<number> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [SEAL_LOCK]);
      if (!rows[0]!.locked) return 0;
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        try {
          const sealed = await this.sealIn(client);
          await client.query('COMMIT');
          return sealed;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
          throw err;
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [SEAL_LOCK]).catch(() => {
          broken = true; // the session (and with it the lock) is dropped
        });
      }
    } finally {
      client.release(broken);
    }
  }

  private async sealIn(tx: pg.PoolClient): Promise<number> {
    const snap = await repo.snapshot(tx); // first statement: the transaction's snapshot
    const state = await repo.sealerState(tx);
    if (BigInt(snap.xmax) < BigInt(state.horizon)) return this.sealAfterRestore(tx, snap, state);
    const chain = new ChainTail(state);
    let cursor = { xid: '0', id: '0' };
    let sealed = 0;
    // The pending transactions' xids are all below the horizon, so (xid, id) order runs through them first.
    const phases: Array<{ pending: string[] } | { horizon: string }> = [{ pending: state.pending }, { horizon: state.horizon }];
    for (const where of phases) {
      if ('pending' in where && where.pending.length === 0) continue;
      for (;;) {
        const page = await repo.candidates(tx, where, cursor, SEAL_PAGE);
        if (page.length === 0) break;
        await repo.insertSeals(tx, chain.seal(page));
        sealed += page.length;
        const last = page[page.length - 1]!;
        cursor = { xid: last.xid, id: last.fields[0] };
        if (page.length < SEAL_PAGE) break;
      }
    }
    // Nothing found: the old horizon and pending list still describe what is left, so nothing is written.
    if (sealed > 0) await repo.saveSealerState(tx, { ...chain.head, horizon: snap.xmax, pending: snap.xip });
    return sealed;
  }

  /**
   * The horizon is ahead of this server's transaction ids, which only happens when the database was
   * dumped and restored into another Postgres server (ids restart there; they never go back on one
   * server, replicas and pg_upgrade included). Without this round, every new entry would sit below
   * the horizon, never sealed and named by verify as added behind the node's back. It seals every
   * committed entry without a seal, by id, moves the other server's ids out of the way and starts
   * the horizon again from this server's snapshot.
   */
  private async sealAfterRestore(tx: pg.PoolClient, snap: { xmax: string; xip: string[] }, state: repo.SealerState): Promise<number> {
    const chain = new ChainTail(state);
    let after = '0';
    let sealed = 0;
    for (;;) {
      const page = await repo.unsealedById(tx, after, SEAL_PAGE);
      if (page.length === 0) break;
      await repo.insertSeals(tx, chain.seal(page));
      sealed += page.length;
      after = page[page.length - 1]!.fields[0];
      if (page.length < SEAL_PAGE) break;
    }
    const moved = await repo.forgetForeignTransactions(tx, snap.xmax);
    await repo.saveSealerState(tx, { ...chain.head, horizon: snap.xmax, pending: snap.xip });
    this.log.warn({ horizon: state.horizon, serverNext: snap.xmax, sealed, moved }, 'audit sealer: transaction ids are behind the last horizon (database restored into another server); sealed every unsealed entry by id and started the horizon again');
    return sealed;
  }

  /**
   * Seals everything committed before this call. A round already running took its snapshot
   * earlier and may miss entries committed since (seen in CI: verify answered 6 unsealed right
   * after they committed), so it is waited out and another round runs.
   */
  private async sealCommitted(): Promise<number> {
    await this.sealing?.catch(() => undefined);
    return this.seal();
  }

  /** The chain's current head (after sealing what is committed): publish it to anchor the log outside the database. */
  async head(): Promise<HeadResult | null> {
    await this.sealCommitted();
    const state = await repo.sealerState(this.pool);
    if (state.seq === '0') return null;
    const at = await repo.sealedEntryTime(this.pool, state.seq);
    return { seq: state.seq, hash: hex(state.hash), anchor: `${state.seq}:${hex(state.hash)}`, at: at?.toISOString() ?? null, sealedAt: state.sealedAt?.toISOString() ?? null };
  }

  /**
   * Seals what is committed, then recomputes the whole chain and names the first entry that does
   * not match. With an anchor (a head published earlier), the chain must also pass through it: a
   * chain cut short before it, or rewritten up to it, fails even if it is consistent in itself.
   * onProgress hears the number of entries checked after each page (the command line shows it).
   */
  async verify(anchor?: ChainHead, onProgress?: (checked: number) => void): Promise<VerifyResult> {
    await this.sealCommitted();
    const state = await repo.sealerState(this.pool);
    const head = state.seq === '0' ? null : { seq: state.seq, hash: hex(state.hash) };
    const anchorSeq = anchor ? BigInt(anchor.seq) : undefined;
    let anchorOk = false;
    let expectedSeq = 1n;
    let previous: Buffer = GENESIS;
    let checked = 0;
    const result = async (mismatch?: VerifyResult['firstMismatch']): Promise<VerifyResult> => ({
      ok: mismatch === undefined,
      checked,
      head,
      unsealed: await repo.countUnsealed(this.pool, state),
      ...(anchor ? { anchor: { seq: anchor.seq, hash: anchor.hash, ok: anchorOk } } : {}),
      ...(mismatch ? { firstMismatch: mismatch } : {}),
    });

    let after = '0';
    for (;;) {
      const page = await repo.sealedPage(this.pool, after, state.seq, VERIFY_PAGE);
      for (const seal of page) {
        const seq = seal.seq;
        if (BigInt(seq) !== expectedSeq) {
          return result({ seq: expectedSeq.toString(), id: null, reason: `entry ${expectedSeq} is missing from the chain (its seal was removed; the next seal is ${seq})` });
        }
        if (!seal.entry) {
          return result({ seq, id: seal.entryId, reason: `entry ${seal.entryId}, sealed at ${seq}, is missing from the log (deleted)` });
        }
        const hash = chainHash(previous, seq, seal.entry);
        if (!seal.hash.equals(hash)) {
          return result({ seq, id: seal.entryId, reason: 'its content does not match its seal (the entry or its seal was changed, or entries were moved)' });
        }
        if (anchorSeq === expectedSeq) {
          if (hex(hash) !== anchor!.hash.toLowerCase()) {
            return result({ seq, id: seal.entryId, reason: `entry ${seq} does not have the anchored hash: the chain was rewritten up to here` });
          }
          anchorOk = true;
        }
        previous = hash;
        expectedSeq += 1n;
        checked += 1;
        after = seq;
      }
      onProgress?.(checked);
      if (page.length < VERIFY_PAGE) break;
    }
    const last = (expectedSeq - 1n).toString();
    if (last !== state.seq) {
      return result({ seq: (expectedSeq).toString(), id: null, reason: `the chain ends at entry ${last}, but its recorded head is entry ${state.seq} (newest entries removed)` });
    }
    if (!previous.equals(state.hash)) {
      return result({ seq: last, id: null, reason: `entry ${last} does not have the hash recorded as the chain's head` });
    }
    if (anchor && !anchorOk) {
      return result({ seq: (expectedSeq).toString(), id: null, reason: `the chain ends at entry ${last}, but the anchored head is entry ${anchor.seq} (newest entries removed)` });
    }
    const orphan = await repo.firstOrphan(this.pool, state);
    if (orphan !== undefined) {
      return result({ seq: null, id: orphan, reason: `entry ${orphan} is in the log but not in the chain (added outside the node, or its seal was removed)` });
    }
    return result();
  }

  query(q: repo.AuditQuery): Promise<repo.AuditRecord[]> {
    return repo.queryEntries(this.pool, q);
  }
}

/** The end of the chain a round appends to: each entry's seal chains on the one before. */
class ChainTail {
  private seq: bigint;
  private previous: Buffer;

  constructor(state: { seq: string; hash: Buffer }) {
    this.seq = BigInt(state.seq);
    this.previous = state.hash;
  }

  seal(entries: readonly repo.Candidate[]): Array<{ seq: string; entryId: string; hash: Buffer }> {
    return entries.map((entry) => {
      this.seq += 1n;
      const hash = chainHashOf(this.previous, this.seq.toString(), entry.fields);
      this.previous = hash;
      return { seq: this.seq.toString(), entryId: entry.fields[0], hash };
    });
  }

  get head(): { seq: string; hash: Buffer } {
    return { seq: this.seq.toString(), hash: this.previous };
  }
}
