/**
 * Batch registration: up to BATCH_MAX_OPERATIONS creates, upserts, updates (with an expected
 * version) and deletes in one request. Items are checked one by one (shape, handle, ownership,
 * values, duplicates) before any row is touched; the database work is a fixed set of statements
 * over arrays whatever the batch size; every change goes through the same change sinks as a
 * single write, in one call. `atomic` writes all or nothing; `partial` writes the valid items.
 */
import type pg from 'pg';
import type { Handle } from '../handle/handle.js';
import { InvalidValueError } from '../handle/formats.js';
import { normaliseValues, type HandleValue, type ValueInput, type ValueLimits } from '../handle/values.js';
import { AppError, errors, ResponseCode } from '../infra/errors.js';
import { parseHandleOrThrow } from '../infra/handle-http.js';
import { withTransaction, type Tx } from '../infra/postgres.js';
import type { CacheInvalidation } from '../resolver/resolver-cache.js';
import { recordedRole, type Actor } from '../tenancy/actor.js';
import * as batchRepo from './batch-repository.js';
import { writeThenSinks, type IdentifierChange, type RequestInfo, type SinkStatement } from './change-sink.js';
import * as idempotency from './idempotency.js';
import type { LockedRecord } from './repository.js';
import type { RegistryService } from './service.js';
import { templateReference, type CompiledTemplate } from './templates-check.js';
import { TemplateChanged, type TemplateStore } from './templates-store.js';

export const BATCH_MAX_OPERATIONS = 10_000;
export type BatchOp = 'create' | 'upsert' | 'update' | 'delete';
export type BatchMode = 'atomic' | 'partial';

/** One operation as the request gives it (its shape is checked per item, not per request). */
export interface BatchOperation {
  op: BatchOp;
  handle: string;
  values?: ValueInput[];
  version?: number;
}

export interface ItemResult {
  /** Handle responseCode: 1 done, else the failure's code (101 exists, 100 not found, ...). */
  responseCode: number;
  /** The normalised handle, or the input when it is not a handle. */
  handle: string;
  op: string;
  /** The HTTP status the same write alone would have answered (201, 200, 409, 412, ...). */
  status: number;
  /** The record's version after the write (the deleted version for a delete). */
  version?: number;
  code?: string;
  message?: string;
  /** Structured facts of the failure (a template violation: the template and its failed items). */
  details?: Readonly<Record<string, unknown>>;
}

export interface BatchAnswer {
  responseCode: number;
  mode: BatchMode;
  /** false when an atomic batch failed: nothing was written. */
  applied: boolean;
  counts: { created: number; updated: number; deleted: number; failed: number };
  results: ItemResult[];
}

type KeyActor = Extract<Actor, { kind: 'key' }>;

/** A batch checked by planOf(), to write with writePlanned(). */
export interface BatchPlan {
  readonly actor: KeyActor;
  readonly planned: readonly Planned[];
  /** The failures of the checks, by item (holes for the planned items). */
  readonly results: readonly ItemResult[];
}

/** An item that passed the checks that need no database. */
interface Planned {
  index: number;
  op: BatchOp;
  handle: Handle;
  input?: ValueInput[];
  /** The input normalised as a new record's values (a replacement normalises again, against the record it replaces). */
  values?: HandleValue[];
  version?: number;
  /** Grouped single writes: each keeps its own caller and request for the change sinks. */
  actor?: KeyActor;
  request?: RequestInfo;
  /** The template version the values name at index 1001, still to check `values` against. */
  named?: string;
  /** The template the values were checked against. */
  template?: CompiledTemplate;
}

/**
 * A single write (PUT) that the write coalescer groups with others into one transaction. Its
 * checks that need no database (handle, ownership, values) are done already, and it names no
 * metadata template (those keep a transaction of their own, which claims the template).
 */
export interface GroupedWrite {
  op: 'create' | 'upsert';
  handle: Handle;
  input: ValueInput[];
  /** The input normalised as a new record's values, when the caller has done it already. */
  values?: HandleValue[];
  actor: KeyActor;
  request?: RequestInfo;
}

const NOT_APPLIED: Pick<ItemResult, 'code' | 'message' | 'responseCode' | 'status'> = {
  responseCode: ResponseCode.ERROR,
  status: 409,
  code: 'NOT_APPLIED',
  message: 'not applied: another item of this atomic batch failed',
};

function failure(op: string, handle: string, err: AppError): ItemResult {
  const result: ItemResult = { responseCode: err.responseCode, handle, op, status: err.statusCode, code: err.code, message: err.message };
  if (err.details) result.details = err.details;
  return result;
}

/** An upsert lost its insert to a concurrent writer: the transaction runs again, locking the row in key order. */
class LostRace extends Error {}

/**
 * How many times a write runs when it keeps losing races with concurrent writers of the same new
 * handles (each loss means another writer created some of them: the next run finds more of them
 * existing). Three was too few under load: three batches and a group of single writes upserting
 * the same 50 new handles, on a busy CI machine, lost three times in a row (503).
 */
export const RACE_ATTEMPTS = 5;

/** A batch transaction that lost a race with a concurrent writer (or template change) and should simply run again. */
export function isRaceToRetry(err: unknown): boolean {
  return err instanceof LostRace || err instanceof AtomicRaceFailure || err instanceof TemplateChanged;
}

/** A create of an atomic batch lost to a concurrent writer after rows were written: roll back, run again. */
class AtomicRaceFailure extends Error {}

export class BatchRegistry {
  constructor(
    private readonly pool: pg.Pool,
    private readonly registry: RegistryService,
    private readonly cache: CacheInvalidation,
    private readonly limits: ValueLimits,
    private readonly idempotencyTtlSeconds: number,
    private readonly templates?: TemplateStore,
  ) {}

  /**
   * Runs a batch. `itemError(i)` is the item's shape error from the route's per-item validator
   * (or undefined). With an Idempotency-Key, a retry of the same body answers the first answer.
   */
  async run(
    actor: Actor,
    mode: BatchMode,
    operations: readonly BatchOperation[],
    itemError: (i: number) => string | undefined,
    idempotencyKey?: string,
    request?: RequestInfo,
  ): Promise<{ status: number; body: BatchAnswer; replayed: boolean }> {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    if (actor.role === 'auditor') throw errors.forbidden('ROLE_NOT_ALLOWED', 'auditor keys are read-only');
    const hash = idempotencyKey === undefined ? undefined : idempotency.requestHash({ mode, operations });

    for (let attempt = 1; ; attempt += 1) {
      // Planned again on a retry: a template the items name may have changed meanwhile.
      const results: ItemResult[] = new Array(operations.length);
      const planned = await this.plan(actor, operations, itemError, results);
      try {
        const outcome = await withTransaction(this.pool, async (tx) => {
          if (idempotencyKey !== undefined) {
            const stored = await idempotency.claim(tx, actor.keyId, idempotencyKey, hash!);
            if (stored) return { ...stored, body: stored.body as BatchAnswer, replayed: true, written: [] as string[], firstUse: false };
          }
          const itemResults = [...results];
          const { written, firstUse } = await this.apply(tx, actor, mode, planned, itemResults, request);
          const body = summarise(mode, itemResults, written !== undefined);
          // A failed atomic batch answers the status of its first failing item.
          const status = body.applied ? 200 : (itemResults.find((r) => r.code !== 'NOT_APPLIED' && r.responseCode !== ResponseCode.SUCCESS)?.status ?? 409);
          if (idempotencyKey !== undefined) await idempotency.answer(tx, actor.keyId, idempotencyKey, { status, body });
          return { status, body, replayed: false, written: written ?? [], firstUse };
        });
        if (outcome.written.length > 0) await this.cache.invalidate(outcome.written);
        if (outcome.firstUse) await this.templates?.announce();
        if (idempotencyKey !== undefined) this.expireKeysNowAndThen();
        return { status: outcome.status, body: outcome.body, replayed: outcome.replayed };
      } catch (err) {
        // Run again: the next attempt sees the concurrent writer's row and answers the conflict.
        if (isRaceToRetry(err) && attempt < RACE_ATTEMPTS) continue;
        if (err instanceof TemplateChanged) throw errors.unavailable('a template this batch names kept changing; retry');
        if (isRaceToRetry(err)) throw errors.unavailable('concurrent writers kept creating handles of this batch; retry');
        throw err;
      }
    }
  }

  /** May this actor import under the prefix of `handle`? (As for any write there.) */
  authoriseImport(actor: Actor, handle: Handle): Extract<Actor, { kind: 'key' }> {
    return this.registry.authorise(actor, handle);
  }

  /**
   * The checks of a batch that need no transaction (imports: done for the next chunk while the
   * previous one is written). Hand the plan to writePlanned once; plan again for a retry.
   */
  async planOf(actor: Actor, operations: readonly BatchOperation[], itemError: (i: number) => string | undefined): Promise<BatchPlan> {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    const results: ItemResult[] = new Array(operations.length);
    const planned = await this.plan(actor, operations, itemError, results);
    return { actor, planned, results };
  }

  /**
   * Writes a planned batch inside the caller's transaction (imports: the chunk's progress
   * commits with its rows). No idempotency; after its commit the caller invalidates `written`,
   * calls `announceTemplates()` when `firstUse`, and plans and runs the transaction again when
   * `isRaceToRetry(err)`.
   */
  async writePlanned(tx: Tx, mode: BatchMode, plan: BatchPlan): Promise<{ body: BatchAnswer; written: string[]; firstUse: boolean }> {
    const results = [...plan.results];
    const { written, firstUse } = await this.apply(tx, plan.actor, mode, plan.planned, results);
    return { body: summarise(mode, results, written !== undefined), written: written ?? [], firstUse };
  }

  /** After the commit of a write whose first use of a template writePlanned reported. */
  announceTemplates(): Promise<void> {
    return this.templates?.announce() ?? Promise.resolve();
  }

  /** Every check before the transaction: the item checks, then the templates the items name, loaded once. */
  private async plan(actor: Actor, operations: readonly BatchOperation[], itemError: (i: number) => string | undefined, results: ItemResult[]): Promise<Planned[]> {
    const planned = this.check(actor, operations, itemError, results);
    const named = planned.filter((p) => p.named !== undefined);
    if (named.length === 0 || !this.templates) return planned;
    const loaded = await this.templates.load(named.map((p) => ({ prefix: p.handle.prefix, version: p.named! })));
    return planned.filter((p) => {
      if (!p.named) return true;
      try {
        p.template = this.templates!.checkWith(loaded, p.handle.prefix, p.named, p.values!);
        p.named = undefined;
        return true;
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        results[p.index] = failure(p.op, p.handle.handle, err);
        return false;
      }
    });
  }

  /**
   * Single writes of different requests in the caller's transaction (registry/write-coalescer.ts),
   * each decided and answered as it would be alone: no two name the same handle. The caller
   * invalidates `written` after its commit and runs the transaction again when `isRaceToRetry(err)`.
   */
  async applyGroup(tx: Tx, writes: readonly GroupedWrite[]): Promise<{ results: ItemResult[]; written: string[] }> {
    const results: ItemResult[] = new Array(writes.length);
    const planned = writes.map((w, index): Planned => ({ index, op: w.op, handle: w.handle, input: w.input, actor: w.actor, ...(w.values ? { values: w.values } : {}), ...(w.request ? { request: w.request } : {}) }));
    const { written } = await this.apply(tx, undefined, 'partial', planned, results);
    return { results, written: written ?? [] };
  }

  /**
   * Single writes of handles that should all be new, as ONE statement in autocommit: the inserts
   * and every change sink's append as data-modifying CTEs. A transaction took four round trips
   * (BEGIN, insert, sinks, COMMIT), which on a busy node were most of a PUT's time. Answers
   * undefined, with nothing written, when one of the handles exists (its unique violation fails
   * the whole statement) or a sink cannot give a statement: the caller then runs applyGroup in a
   * transaction, which decides each write against the rows as they are.
   */
  async insertGroup(writes: readonly GroupedWrite[]): Promise<{ results: ItemResult[]; written: string[] } | undefined> {
    const all = this.allNewStatement(writes, new Date().toISOString());
    if (!all) return undefined;
    try {
      await this.pool.query(all.statement);
    } catch (err) {
      if (batchRepo.isHandleTaken(err)) return undefined;
      throw err;
    }
    return { results: writes.map((w) => writtenResult(w, 201, 1)), written: all.handles };
  }

  /**
   * Creates of handles that should all be new as ONE statement: the plain insert (no ON CONFLICT:
   * a handle that exists fails it whole with a unique violation) and every change sink's append
   * as data-modifying CTEs. Undefined when a sink can only record() in a transaction.
   */
  private allNewStatement(
    items: ReadonlyArray<{ handle: Handle; values?: HandleValue[] | undefined; input?: readonly ValueInput[] | undefined; actor?: KeyActor | undefined; request?: RequestInfo | undefined }>,
    now: string,
    batchActor?: KeyActor,
    batchRequest?: RequestInfo,
  ): { statement: SinkStatement; handles: string[] } | undefined {
    const rows = items.map((w) => storedRow(w.handle, w.values ?? this.normalise(w.handle, w.input!, now)));
    const changes = items.map((w, i) => changeOf('create', w, 1, rows[i]!.values, null, now, batchActor, batchRequest, rows[i]!.json));
    const sinks = this.registry.sinkStatements(changes);
    if (!sinks) return undefined;
    return { statement: writeThenSinks(batchRepo.insertAllStatement(rows), sinks), handles: changes.map((c) => c.handle) };
  }

  /** The checks that need no database; failures go into `results`, the rest is returned. */
  private check(actor: Actor, operations: readonly BatchOperation[], itemError: (i: number) => string | undefined, results: ItemResult[]): Planned[] {
    const planned: Planned[] = [];
    const seen = new Map<string, number>();
    const now = new Date().toISOString();
    operations.forEach((item, index) => {
      const op = typeof item?.op === 'string' ? item.op : '';
      const input = typeof item?.handle === 'string' ? item.handle : '';
      try {
        const shape = itemError(index);
        if (shape !== undefined) throw errors.badRequest('INVALID_ITEM', shape);
        if (item.op === 'delete' && item.values !== undefined) throw errors.badRequest('INVALID_ITEM', 'a delete takes no values');
        if (item.op !== 'delete' && item.values === undefined) throw errors.badRequest('INVALID_ITEM', `a ${item.op} needs values`);
        if (item.version !== undefined && item.op !== 'update' && item.op !== 'delete') {
          throw errors.badRequest('INVALID_ITEM', 'version (the expected current version) applies to update and delete only');
        }
        const handle = parseHandleOrThrow(input);
        this.registry.authorise(actor, handle);
        const first = seen.get(handle.handle);
        if (first !== undefined) throw errors.badRequest('DUPLICATE_HANDLE', `handle ${handle.handle} is also item ${first} of this batch`);
        seen.set(handle.handle, index);
        // Refuse bad values before any row is touched; kept as a new record's values (and checked against the template they name in plan()).
        const values = item.values === undefined ? undefined : this.normalise(handle, item.values, now);
        const version = values === undefined || !this.templates ? undefined : templateReference(values);
        planned.push({ index, op: item.op, handle, input: item.values, version: item.version, ...(values ? { values } : {}), ...(version !== undefined ? { named: version } : {}) });
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        results[index] = failure(op, input, err);
      }
    });
    return planned;
  }

  private normalise(handle: Handle, input: readonly ValueInput[], now: string, previous?: LockedRecord): HandleValue[] {
    try {
      return normaliseValues(input, { limits: this.limits, now, prefix: handle.prefix, previous: previous?.values });
    } catch (err) {
      if (err instanceof InvalidValueError) throw errors.invalidValue(err.message);
      throw err;
    }
  }

  /**
   * Locks the batch's existing rows, decides each item against them, and (unless an atomic batch
   * has a failure) writes: inserts, replacements and deletes, one statement each, then one call
   * per change sink. Returns the handles written, or undefined when an atomic batch failed, and
   * whether it is the first write to use one of its templates.
   */
  private async apply(
    tx: Tx,
    /** The batch's caller; undefined for a group of single writes, whose items carry their own. */
    actor: KeyActor | undefined,
    mode: BatchMode,
    planned: readonly Planned[],
    results: ItemResult[],
    request?: RequestInfo,
  ): Promise<{ written: string[] | undefined; firstUse: boolean }> {
    if (mode === 'atomic' && results.some((r) => r !== undefined)) return { written: this.notApplied(planned, results), firstUse: false };
    const now = new Date().toISOString();
    // Creates only (naming no template: its version would be claimed before the taken handles are
    // known) try the one statement first, unless the caller has just tried it (a group of single
    // writes) or recent batches of creates kept meeting existing handles.
    const allCreates = planned.every((p) => p.op === 'create' && p.template === undefined);
    if (allCreates && planned.length > 0 && actor !== undefined && this.tryAllNew()) {
      const written = await this.insertAllNew(tx, planned, results, now, actor, request);
      this.createsNew = written !== undefined;
      if (written) return { written, firstUse: false };
    }
    // Otherwise partial creates only have nothing to lock: the insert takes each free key and skips
    // taken ones (ON CONFLICT DO NOTHING), which are then found below and refused as the lock would have.
    const createsOnly = mode === 'partial' && allCreates;
    const existing = createsOnly ? new Map<string, LockedRecord>() : await batchRepo.lockMany(tx, planned.map((p) => p.handle));
    const inserts: Array<Planned & { values: HandleValue[] }> = [];
    const replaces: Array<Planned & { values: HandleValue[]; previous: LockedRecord }> = [];
    const deletes: Array<Planned & { previous: LockedRecord }> = [];
    for (const p of planned) {
      const current = existing.get(p.handle.handle);
      try {
        if (p.op === 'create' && current) throw errors.handleExists(p.handle.handle);
        if ((p.op === 'update' || p.op === 'delete') && !current) throw errors.handleNotFound(p.handle.handle);
        if (p.version !== undefined && current && current.version !== p.version) {
          throw errors.versionMismatch(`handle ${p.handle.handle} is at version ${current.version}, not ${p.version}`);
        }
        if (p.op === 'delete') deletes.push({ ...p, previous: current! });
        else if (current) replaces.push({ ...p, previous: current, values: this.normalise(p.handle, p.input!, now, current) });
        else inserts.push({ ...p, values: p.values ?? this.normalise(p.handle, p.input!, now) });
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        results[p.index] = failure(p.op, p.handle.handle, err);
      }
    }
    if (mode === 'atomic' && results.some((r) => r !== undefined)) return { written: this.notApplied(planned, results), firstUse: false };
    const rows = (list: ReadonlyArray<Planned & { values: HandleValue[] }>) => list.map((p) => ({ prefix: p.handle.prefix, suffix: p.handle.suffix, values: p.values }));
    const inserted = await batchRepo.insertMany(tx, rows(inserts));
    if (inserted.size !== inserts.length) {
      // Created by a concurrent writer since our lock (the insert waited for its commit), or, for
      // a partial batch of creates, before it. A create fails as it would have: the row existed
      // when the insert ran, so nothing needs locking. An upsert must replace the row as it now
      // is, but locking it here would take a lock out of key order, behind locks we hold: two
      // groups racing over the same new handles deadlocked that way. The transaction runs again
      // instead, and its first statement locks the row in order.
      const lost = inserts.filter((p) => !inserted.has(p.handle.handle));
      if (lost.some((p) => p.op === 'upsert')) throw new LostRace();
      if (mode === 'atomic') throw new AtomicRaceFailure();
      for (const p of lost) {
        inserts.splice(inserts.indexOf(p), 1);
        results[p.index] = failure(p.op, p.handle.handle, errors.handleExists(p.handle.handle));
      }
    }
    const versions = await batchRepo.replaceMany(tx, rows(replaces));
    await batchRepo.deleteMany(tx, deletes.map((p) => p.handle));
    // After the identifiers' locks, as a single write takes them: templates are always locked last.
    // And after the writes, for the items written only: a create lost to a concurrent writer in a
    // partial batch must not freeze a version no record then names. A template that changed since
    // the check (TemplateChanged) still rolls all of this back and the batch runs again.
    const firstUse = this.templates ? await this.templates.claim(tx, [...inserts, ...replaces].map((p) => p.template)) : false;

    const changes: IdentifierChange[] = [];
    const change = (op: IdentifierChange['op'], p: Planned, version: number, values: HandleValue[] | null, previous: LockedRecord | null) =>
      changeOf(op, p, version, values, previous, now, actor, request);
    for (const p of inserts) {
      changes.push(change('create', p, 1, p.values, null));
      results[p.index] = writtenResult(p, 201, 1);
    }
    for (const p of replaces) {
      const version = versions.get(p.handle.handle)!;
      changes.push(change('update', p, version, p.values, p.previous));
      results[p.index] = writtenResult(p, 200, version);
    }
    for (const p of deletes) {
      changes.push(change('delete', p, p.previous.version, null, p.previous));
      results[p.index] = writtenResult(p, 200, p.previous.version);
    }
    if (changes.length > 0) await this.registry.emit(tx, changes);
    return { written: changes.map((c) => c.handle), firstUse };
  }

  /**
   * Whether a batch of creates tries insertAllNew. Creates name new handles by intent, but a batch
   * re-sent, or an import run again, meets its own rows: each attempt then fails after inserting
   * up to the first taken key. While batches keep failing that way, every 16th tries again.
   */
  private tryAllNew(): boolean {
    this.createBatches += 1;
    return this.createsNew || this.createBatches % 16 === 0;
  }

  private createBatches = 0;
  private createsNew = true;

  /**
   * A batch's creates of handles that should all be new (the common bulk load) as allNewStatement,
   * under a savepoint. A plain insert costs Postgres about a third less per row than ON CONFLICT DO
   * NOTHING RETURNING, and the sinks ride along instead of taking a round trip of their own. When
   * one of the handles exists: back to the savepoint, and undefined (nothing written), so the
   * caller decides each item against the rows as they are.
   */
  private async insertAllNew(tx: Tx, planned: readonly Planned[], results: ItemResult[], now: string, actor: KeyActor, request: RequestInfo | undefined): Promise<string[] | undefined> {
    const all = this.allNewStatement(planned, now, actor, request);
    if (!all) return undefined;
    await tx.query('SAVEPOINT insert_all_new');
    try {
      await tx.query(all.statement);
    } catch (err) {
      if (!batchRepo.isHandleTaken(err)) throw err;
      await tx.query('ROLLBACK TO SAVEPOINT insert_all_new');
      return undefined;
    }
    planned.forEach((p) => {
      results[p.index] = writtenResult(p, 201, 1);
    });
    return all.handles;
  }

  private notApplied(planned: readonly Planned[], results: ItemResult[]): undefined {
    for (const p of planned) results[p.index] ??= { ...NOT_APPLIED, op: p.op, handle: p.handle.handle };
    return undefined;
  }

  private lastExpiry = 0;

  /** Forgets expired idempotency keys, at most once a minute, in the background. */
  private expireKeysNowAndThen(): void {
    if (Date.now() - this.lastExpiry < 60_000) return;
    this.lastExpiry = Date.now();
    void idempotency.expire(this.pool, this.idempotencyTtlSeconds).catch(() => undefined);
  }
}

/** What the sinks get for a written item: its own caller and request (grouped PUTs), else the batch's. */
function changeOf(
  op: IdentifierChange['op'],
  item: { handle: Handle; actor?: KeyActor | undefined; request?: RequestInfo | undefined },
  version: number,
  values: HandleValue[] | null,
  previous: LockedRecord | null,
  at: string,
  batchActor?: KeyActor,
  batchRequest?: RequestInfo,
  /** `values` as JSON text, when made already. */
  valuesJson?: string,
): IdentifierChange {
  const by = item.actor ?? batchActor!;
  const request = item.request ?? batchRequest;
  return {
    op, handle: item.handle.handle, prefix: item.handle.prefix, suffix: item.handle.suffix, version, values, valuesJson, previous,
    actor: { keyId: by.keyId, role: recordedRole(by) }, at, ...(request ? { request } : {}),
  };
}

/** A record to insert, its values' JSON text made once for the row and the change sinks. */
const storedRow = (handle: Handle, values: HandleValue[]) => ({ prefix: handle.prefix, suffix: handle.suffix, values, json: JSON.stringify(values) });

/** The result of an item that was written. */
const writtenResult = (item: { op: string; handle: Handle }, status: number, version: number): ItemResult =>
  ({ responseCode: ResponseCode.SUCCESS, handle: item.handle.handle, op: item.op, status, version });

function summarise(mode: BatchMode, results: readonly ItemResult[], applied: boolean): BatchAnswer {
  const counts = { created: 0, updated: 0, deleted: 0, failed: 0 };
  for (const r of results) {
    if (r.responseCode !== ResponseCode.SUCCESS) counts.failed += 1;
    else if (r.op === 'delete') counts.deleted += 1;
    else if (r.status === 201) counts.created += 1;
    else counts.updated += 1;
  }
  if (!applied) counts.failed = results.length;
  const responseCode = counts.failed === 0 ? ResponseCode.SUCCESS : ResponseCode.ERROR;
  return { responseCode, mode, applied, counts, results: [...results] };
}
