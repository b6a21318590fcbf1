/** Registration: create, replace and delete identifier records under the caller's prefixes. */
import type pg from 'pg';
import { InvalidHandleError, isPrefixUnder, normalisePrefix, type Handle } from '../handle/handle.js';
import { parseHandleOrThrow } from '../infra/handle-http.js';
import { InvalidValueError } from '../handle/formats.js';
import { normaliseValues, type HandleRecord, type ValueInput, type ValueLimits } from '../handle/values.js';
import { AppError, errors, ResponseCode } from '../infra/errors.js';
import { withTransaction } from '../infra/postgres.js';
import type { CacheInvalidation } from '../resolver/resolver-cache.js';
import { canList, ownsPrefix, recordedRole, type Actor } from '../tenancy/actor.js';
import { runSinks, type ChangeSink, type IdentifierChange, type RequestInfo, type SinkStatement } from './change-sink.js';
import type { GroupedWrite, ItemResult } from './batch.js';
import * as repo from './repository.js';
import { TemplateChanged, type TemplateStore } from './templates-store.js';

/** Preconditions of a write, from `overwrite`, `If-None-Match` and `If-Match`. */
export interface WriteConditions {
  /** Refuse with 409 when the handle exists (overwrite=false or If-None-Match: *). */
  createOnly?: boolean;
  /** If-Match: '*' (must exist) or the versions one of which must be current. */
  ifMatch?: '*' | readonly number[];
}

export interface PutResult {
  created: boolean;
  handle: string;
  version: number;
}

/** Where single writes without If-Match go to share a transaction (registry/write-coalescer.ts). */
export interface GroupWriter {
  write(write: GroupedWrite): Promise<ItemResult>;
}

type KeyActor = Extract<Actor, { kind: 'key' }>;

export class RegistryService {
  private grouped: GroupWriter | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly cache: CacheInvalidation,
    private readonly sinks: readonly ChangeSink[],
    private readonly limits: ValueLimits,
    private readonly nodePrefix: string,
    /** Disabled prefixes accept no writes, from anyone. Synchronous: answered from memory. */
    private readonly isDisabled: (prefix: string) => boolean = () => false,
    /** Metadata templates: a record naming one at index 1001 is checked against it. */
    private readonly templates?: TemplateStore,
  ) {}

  /**
   * From now on, creates and replacements without If-Match go through `writer`, which commits
   * them in groups; writes with If-Match and deletes keep a transaction of their own.
   */
  groupWritesWith(writer: GroupWriter): void {
    this.grouped = writer;
  }

  /**
   * May this actor write this handle? Checked first thing on a request (before its body is even
   * validated, so anonymous callers learn nothing of the schema), and again by put/delete.
   * Order: 401 without a key, 102 for a malformed handle, 403 for a prefix it does not own.
   */
  authoriseWrite(actor: Actor, handleInput: string): { handle: Handle; actor: KeyActor } {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    const handle = parseHandleOrThrow(handleInput);
    return { handle, actor: this.authorise(actor, handle) };
  }

  /** May this actor write under this handle's prefix? (Single writes and batch items.) */
  authorise(actor: Actor, handle: Handle): KeyActor {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    if (actor.role === 'auditor') throw errors.forbidden('ROLE_NOT_ALLOWED', 'auditor keys are read-only');
    if (!isPrefixUnder(handle.prefix, this.nodePrefix)) {
      throw errors.forbidden('PREFIX_OUTSIDE_NODE', `prefix ${handle.prefix} is not under this node's prefix ${this.nodePrefix}`);
    }
    if (!ownsPrefix(actor, handle.prefix, this.nodePrefix)) {
      throw errors.forbidden('PREFIX_NOT_OWNED', `this key may not write under prefix ${handle.prefix}`);
    }
    if (this.isDisabled(handle.prefix)) throw errors.forbidden('PREFIX_DISABLED', `prefix ${handle.prefix} is disabled: it accepts no writes`);
    return actor;
  }

  private static checkIfMatch(handle: string, current: number | undefined, ifMatch: WriteConditions['ifMatch']): void {
    if (ifMatch === undefined) return;
    if (current === undefined) throw errors.versionMismatch(`handle ${handle} does not exist, so If-Match cannot match`);
    if (ifMatch !== '*' && !ifMatch.includes(current)) {
      throw errors.versionMismatch(`handle ${handle} is at version ${current}, not ${ifMatch.join(' or ')}`);
    }
  }

  /** Creates or replaces a record. Values (and the template they name) are checked before any row is touched. */
  async put(actor: Actor, handleInput: string, input: readonly ValueInput[], conditions: WriteConditions = {}, request?: RequestInfo): Promise<PutResult> {
    const { handle, actor: key } = this.authoriseWrite(actor, handleInput);
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.putOnce(handle, key, input, conditions, request);
      } catch (err) {
        // The template changed between the check and the write: check against the new one.
        if (!(err instanceof TemplateChanged)) throw err;
        if (attempt >= 3) throw errors.unavailable('the template this record names kept changing; retry');
      }
    }
  }

  private async putOnce(handle: Handle, key: KeyActor, input: readonly ValueInput[], conditions: WriteConditions, request?: RequestInfo): Promise<PutResult> {
    const now = new Date().toISOString();
    const toValues = (previous?: repo.LockedRecord) => {
      try {
        return normaliseValues(input, { limits: this.limits, now, prefix: handle.prefix, previous: previous?.values });
      } catch (err) {
        if (err instanceof InvalidValueError) throw errors.invalidValue(err.message);
        throw err;
      }
    };
    // Refuse bad input before opening a transaction.
    const checked = toValues();
    const pending = this.templates?.check(handle.prefix, checked);
    const template = pending === undefined ? undefined : await pending;
    let firstUse = false;

    // A record naming a template keeps a transaction of its own: it claims the template version.
    if (this.grouped && conditions.ifMatch === undefined && !template) {
      const outcome = await this.grouped.write({ op: conditions.createOnly ? 'create' : 'upsert', handle, input: [...input], values: checked, actor: key, ...(request ? { request } : {}) });
      if (outcome.responseCode !== ResponseCode.SUCCESS) throw new AppError(outcome.code ?? 'WRITE_FAILED', outcome.message ?? 'the write failed', outcome.status, outcome.responseCode);
      return { created: outcome.status === 201, handle: handle.handle, version: outcome.version! };
    }

    const result = await withTransaction(this.pool, async (tx) => {
      // A create that must not replace (overwrite=false, If-None-Match: *) has nothing to lock:
      // the insert either takes the key or finds it taken. One statement less than the general path.
      if (conditions.createOnly && conditions.ifMatch === undefined) {
        if (template) firstUse = (await this.templates!.claim(tx, [template])) || firstUse;
        const values = toValues();
        if (!(await repo.insertRecord(tx, handle.prefix, handle.suffix, values))) throw errors.handleExists(handle.handle);
        await this.emit(tx, [this.change('create', handle, key, now, 1, values, null, request)]);
        return { created: true, handle: handle.handle, version: 1 };
      }
      // A concurrent create between our lock attempt and insert makes the insert a no-op; the
      // second pass then finds and locks that row. Two passes always suffice.
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const existing = await repo.lockRecord(tx, handle.prefix, handle.suffix);
        RegistryService.checkIfMatch(handle.handle, existing?.version, conditions.ifMatch);
        if (existing && conditions.createOnly) throw errors.handleExists(handle.handle);
        if (template) firstUse = (await this.templates!.claim(tx, [template])) || firstUse;
        if (existing) {
          const values = toValues(existing);
          const version = await repo.replaceRecord(tx, handle.prefix, handle.suffix, values);
          const change = this.change('update', handle, key, now, version, values, existing, request);
          await this.emit(tx, [change]);
          return { created: false, handle: handle.handle, version };
        }
        const values = toValues();
        if (await repo.insertRecord(tx, handle.prefix, handle.suffix, values)) {
          await this.emit(tx, [this.change('create', handle, key, now, 1, values, null, request)]);
          return { created: true, handle: handle.handle, version: 1 };
        }
      }
      throw new Error(`could not settle a concurrent write of ${handle.handle}`);
    });
    await this.cache.invalidate([handle.handle]);
    if (firstUse) await this.templates!.announce();
    return result;
  }

  /** Deletes a record; returns its normalised handle. */
  async delete(actor: Actor, handleInput: string, conditions: Pick<WriteConditions, 'ifMatch'> = {}, request?: RequestInfo): Promise<string> {
    const { handle, actor: key } = this.authoriseWrite(actor, handleInput);
    const now = new Date().toISOString();
    await withTransaction(this.pool, async (tx) => {
      const existing = await repo.lockRecord(tx, handle.prefix, handle.suffix);
      if (!existing) {
        if (conditions.ifMatch !== undefined) RegistryService.checkIfMatch(handle.handle, undefined, conditions.ifMatch);
        throw errors.handleNotFound(handle.handle);
      }
      RegistryService.checkIfMatch(handle.handle, existing.version, conditions.ifMatch);
      await repo.deleteRecord(tx, handle.prefix, handle.suffix);
      await this.emit(tx, [this.change('delete', handle, key, now, existing.version, null, existing, request)]);
    });
    await this.cache.invalidate([handle.handle]);
    return handle.handle;
  }

  /** The stored record, read from Postgres (the resolver's source behind its caches). */
  find(prefix: string, suffix: string): Promise<HandleRecord | undefined> {
    return repo.findRecord(this.pool, prefix, suffix);
  }

  /** The stored records of many handles in one query; absent ones are missing from the map. */
  findMany(handles: readonly Handle[]): Promise<Map<string, HandleRecord>> {
    return repo.findRecords(this.pool, handles);
  }

  /** Handles under one prefix, page by page (0-based pages, as Handle REST does). */
  async list(actor: Actor, prefixInput: string, page: number, pageSize: number): Promise<{ prefix: string; total: number; handles: string[] }> {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    let prefix: string;
    try {
      prefix = normalisePrefix(prefixInput);
    } catch (err) {
      if (err instanceof InvalidHandleError) throw errors.invalidHandle(`invalid prefix: ${err.message}`);
      throw err;
    }
    if (!canList(actor, prefix, this.nodePrefix)) throw errors.forbidden('PREFIX_NOT_OWNED', `this key may not list prefix ${prefix}`);
    const { total, handles } = await repo.listHandles(this.pool, prefix, pageSize, page * pageSize);
    return { prefix, total, handles };
  }

  private change(
    op: IdentifierChange['op'],
    handle: Handle,
    actor: KeyActor,
    at: string,
    version: number,
    values: IdentifierChange['values'],
    previous: repo.LockedRecord | null,
    request: RequestInfo | undefined,
  ): IdentifierChange {
    return {
      ...(request ? { request } : {}),
      op,
      handle: handle.handle,
      prefix: handle.prefix,
      suffix: handle.suffix,
      version,
      values,
      previous,
      actor: { keyId: actor.keyId, role: recordedRole(actor) },
      at,
    };
  }

  /** Hands committed-to-be changes to every sink, inside the write's transaction. */
  async emit(tx: pg.PoolClient, changes: IdentifierChange[]): Promise<void> {
    await runSinks(tx, this.sinks, changes);
  }

  /** Every sink's work for `changes` as statements; undefined when a sink can only record() in a transaction. */
  sinkStatements(changes: readonly IdentifierChange[]): SinkStatement[] | undefined {
    const parts: SinkStatement[] = [];
    for (const sink of this.sinks) {
      if (!sink.statement) return undefined;
      const part = sink.statement(changes);
      if (part) parts.push(part);
    }
    return parts;
  }
}
