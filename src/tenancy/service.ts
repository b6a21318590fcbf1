/** Enterprises, their prefixes and API keys: the logic behind /api/admin and `snode admin`. */
import type pg from 'pg';
import type { AuditContext } from '../audit/entry.js';
import { NO_AUDIT, type AuditTrail } from '../audit/service.js';
import { InvalidHandleError, isChildPrefix, normalisePrefix } from '../handle/handle.js';
import { usccProblem } from '../handle/uscc.js';
import { errors } from '../infra/errors.js';
import { FOREIGN_KEY_VIOLATION, sqlState, UNIQUE_VIOLATION, withTransaction, type Db } from '../infra/postgres.js';
import { LocalTenancyChanges, type TenancyChanges } from './change-bus.js';
import { KeyCache } from './key-cache.js';
import { ANONYMOUS, type Actor } from './actor.js';
import { generateApiKey, hashApiKey, looksLikeApiKey, type Role } from './api-keys.js';
import * as repo from './repository.js';

export interface NewKey extends repo.ApiKeyRow {
  /** The key itself: returned once, never stored. */
  key: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// last_used_at is written at most this often per key, off the request path.
const TOUCH_INTERVAL_MS = 60_000;

function checkId(id: string, what: string): string {
  if (!UUID.test(id)) throw errors.badRequest('INVALID_ID', `${what} ${JSON.stringify(id)} is not a UUID`);
  return id;
}

/** The command line acts with the database's authority. */
export const CLI_CONTEXT: AuditContext = { keyId: 'cli', role: 'system' };

/** Prefix allocations (an approval's choice of the next free code, an admin's allocation) take turns under this lock. */
export const ALLOCATION_LOCK = 7_340_006;

/** Longest enterprise name and key label (the HTTP schemas' maxLength). */
const MAX_TEXT = 200;

export interface TenancyOptions {
  /** Where state changes are recorded, in their own transaction. */
  audit?: AuditTrail;
  /** Tells every process that keys or prefixes changed. */
  changes?: TenancyChanges;
  /** How long a checked key is trusted without asking Postgres again (0: always ask). */
  keyCacheMs?: number;
}

export function checkedUscc(input: string): string {
  const uscc = input.trim().toUpperCase();
  const problem = usccProblem(uscc);
  if (problem) throw errors.badRequest('INVALID_USCC', problem);
  return uscc;
}

export function checkedPrefix(input: string, nodePrefix: string): string {
  let prefix: string;
  try {
    prefix = normalisePrefix(input.trim());
  } catch (err) {
    if (err instanceof InvalidHandleError) throw errors.badRequest('INVALID_PREFIX', err.message);
    throw err;
  }
  if (!isChildPrefix(prefix, nodePrefix)) {
    throw errors.badRequest('PREFIX_OUTSIDE_NODE', `an enterprise prefix is one segment below the node prefix ${nodePrefix} (like ${nodePrefix}.8); got ${prefix}`);
  }
  return prefix;
}

export type KeyActor = Extract<Actor, { kind: 'key' }>;

function ownEnterprise(actor: KeyActor): string {
  if (actor.role !== 'enterprise' || !actor.enterpriseId) throw errors.forbidden('ROLE_NOT_ALLOWED', 'only an enterprise key manages its own keys');
  return actor.enterpriseId;
}

export class TenancyService {
  private readonly touched = new Map<string, number>();
  readonly audit: AuditTrail;
  readonly changes: TenancyChanges;
  private readonly keys: KeyCache;
  private disabled = new Set<string>();
  private disabledLoad: Promise<void> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly secret: Buffer,
    readonly nodePrefix: string,
    options: TenancyOptions = {},
  ) {
    this.audit = options.audit ?? NO_AUDIT;
    this.changes = options.changes ?? new LocalTenancyChanges();
    this.keys = new KeyCache(options.keyCacheMs ?? 0);
    this.changes.onChange(() => {
      this.keys.clear();
      void this.loadDisabled();
    });
  }

  /** Loads the disabled prefixes (also on every tenancy change); writes under them are refused. */
  loadDisabled(): Promise<void> {
    const load = repo.disabledPrefixes(this.pool).then(
      (prefixes) => {
        if (this.disabledLoad === load) this.disabled = new Set(prefixes);
      },
      () => undefined, // keep the last known set; the next change or start retries
    );
    this.disabledLoad = load;
    return load;
  }

  /** Whether writes under this prefix are refused because it is disabled. Synchronous: no I/O. */
  isDisabled(prefix: string): boolean {
    return this.disabled.has(prefix);
  }

  async createEnterprise(input: { name: string; uscc: string }, by: AuditContext = CLI_CONTEXT): Promise<repo.EnterpriseRow> {
    const name = input.name.trim();
    if (name.length === 0) throw errors.badRequest('INVALID_NAME', 'enterprise name is empty');
    // As the HTTP schemas say, for the command line too.
    if (name.length > MAX_TEXT) throw errors.badRequest('INVALID_NAME', `enterprise name is ${name.length} characters; at most ${MAX_TEXT}`);
    const uscc = checkedUscc(input.uscc);
    try {
      return await withTransaction(this.pool, async (tx) => {
        const row = await repo.insertEnterprise(tx, name, uscc);
        await this.audit.append(tx, [{ context: by, action: 'enterprise.create', target: row.id, after: row, detail: { uscc } }]);
        return row;
      });
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) throw errors.conflict('ENTERPRISE_EXISTS', `an enterprise with code ${uscc} exists already`);
      throw err;
    }
  }

  async getEnterprise(id: string): Promise<repo.EnterpriseRow> {
    const enterprise = await repo.findEnterprise(this.pool, checkId(id, 'enterprise id'));
    if (!enterprise) throw errors.notFound('ENTERPRISE_NOT_FOUND', `no enterprise ${id}`);
    return enterprise;
  }

  /** The prefixes (any state) whose statistics a key may read: see repo.readablePrefixes. */
  readablePrefixes(keyId: string): Promise<Array<{ prefix: string; state: string }>> {
    return repo.readablePrefixes(this.pool, keyId);
  }

  /** Every allocated prefix with its enterprise (statistics reports). */
  prefixDirectory(): Promise<repo.PrefixDirectoryRow[]> {
    return repo.prefixDirectory(this.pool);
  }

  counts(): Promise<{ enterprises: number; prefixes: Record<string, number> }> {
    return repo.tenancyCounts(this.pool);
  }

  listEnterprises(limit = 1000, offset = 0): Promise<repo.EnterpriseRow[]> {
    return repo.listEnterprises(this.pool, limit, offset);
  }

  async addPrefix(enterpriseId: string, prefixInput: string, by: AuditContext = CLI_CONTEXT): Promise<repo.PrefixRow> {
    const prefix = checkedPrefix(prefixInput, this.nodePrefix);
    let row: repo.PrefixRow;
    try {
      row = await withTransaction(this.pool, async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [ALLOCATION_LOCK]);
        const inserted = await repo.insertPrefix(tx, prefix, checkId(enterpriseId, 'enterprise id'));
        await this.audit.append(tx, [{ context: by, action: 'prefix.allocate', target: prefix, after: inserted, detail: { enterpriseId } }]);
        return inserted;
      });
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) throw errors.conflict('PREFIX_TAKEN', `prefix ${prefix} is allocated already`);
      if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw errors.notFound('ENTERPRISE_NOT_FOUND', `no enterprise ${enterpriseId}`);
      throw err;
    }
    await this.changes.publish(); // the enterprise's cached keys learn the new prefix
    return row;
  }

  /** active <-> disabled. A disabled prefix accepts no writes from anyone; its records still resolve. */
  async setPrefixState(prefixInput: string, state: 'active' | 'disabled', by: AuditContext = CLI_CONTEXT): Promise<repo.PrefixRow> {
    const prefix = checkedPrefix(prefixInput, this.nodePrefix);
    const row = await withTransaction(this.pool, async (tx) => {
      const changed = await repo.setPrefixState(tx, prefix, state);
      if (!changed) throw errors.notFound('PREFIX_NOT_FOUND', `prefix ${prefix} is not allocated`);
      if (changed.before !== 'active' && changed.before !== 'disabled') {
        throw errors.conflict('PREFIX_STATE', `prefix ${prefix} is ${changed.before}; only active and disabled prefixes change state`);
      }
      await this.audit.append(tx, [{
        context: by, action: state === 'disabled' ? 'prefix.disable' : 'prefix.enable', target: prefix,
        before: { prefix, state: changed.before }, after: { prefix, state }, detail: { from: changed.before, to: state },
      }]);
      return changed.row;
    });
    await this.changes.publish();
    await this.loadDisabled();
    return row;
  }

  listPrefixes(limit = 10000, offset = 0): Promise<repo.PrefixRow[]> {
    return repo.listPrefixes(this.pool, limit, offset);
  }

  async createKey(
    input: { role: Role; enterpriseId?: string | null; label?: string; expiresAt?: string | null; prefixes?: readonly string[] | null },
    by: AuditContext = CLI_CONTEXT,
    db?: Db,
  ): Promise<NewKey> {
    if (db) return this.insertKey(db, input, by);
    return withTransaction(this.pool, (tx) => this.insertKey(tx, input, by));
  }

  private async insertKey(
    db: Db,
    input: { role: Role; enterpriseId?: string | null; label?: string; expiresAt?: string | null; prefixes?: readonly string[] | null },
    by: AuditContext,
  ): Promise<NewKey> {
    const enterpriseId = input.enterpriseId ? checkId(input.enterpriseId, 'enterpriseId') : null;
    if (input.label !== undefined && input.label.length > MAX_TEXT) throw errors.badRequest('INVALID_LABEL', `the key label is ${input.label.length} characters; at most ${MAX_TEXT}`);
    if (input.role === 'enterprise' && !enterpriseId) throw errors.badRequest('ENTERPRISE_REQUIRED', 'an enterprise key needs enterpriseId');
    if (input.role !== 'enterprise' && enterpriseId) {
      throw errors.badRequest('ENTERPRISE_NOT_ALLOWED', `an ${input.role} key belongs to the node, not to an enterprise`);
    }
    let expiresAt: Date | null = null;
    // Any string given is a date-time or refused: an empty one must not mean "never expires".
    if (input.expiresAt !== undefined && input.expiresAt !== null) {
      expiresAt = new Date(input.expiresAt);
      if (Number.isNaN(expiresAt.getTime())) throw errors.badRequest('INVALID_EXPIRY', 'expiresAt is not a date-time');
      if (expiresAt.getTime() <= Date.now()) throw errors.badRequest('INVALID_EXPIRY', 'expiresAt is in the past');
    }
    let prefixes: string[] | null = null;
    if (input.prefixes !== undefined && input.prefixes !== null) {
      if (input.role !== 'enterprise') throw errors.badRequest('PREFIXES_NOT_ALLOWED', 'only enterprise keys are restricted to prefixes');
      prefixes = [...new Set(input.prefixes.map((p) => checkedPrefix(p, this.nodePrefix)))].sort();
      if (prefixes.length === 0) throw errors.badRequest('INVALID_PREFIXES', 'prefixes, when given, names at least one prefix');
      const owned = new Set(await repo.enterprisePrefixes(db, enterpriseId!));
      const foreign = prefixes.filter((p) => !owned.has(p));
      if (foreign.length > 0) throw errors.badRequest('PREFIX_NOT_OWNED', `the enterprise does not hold ${foreign.join(', ')}`);
    }
    const { key, hint } = generateApiKey();
    try {
      const row = await repo.insertApiKey(db, {
        hash: hashApiKey(this.secret, key),
        hint,
        role: input.role,
        enterpriseId,
        label: input.label?.trim() ?? '',
        expiresAt,
        prefixes,
      });
      await this.audit.append(db, [{
        context: by, action: 'key.create', target: row.id, after: row,
        detail: { role: row.role, enterpriseId: row.enterpriseId, prefixes: row.prefixes, expiresAt: row.expiresAt },
      }]);
      return { ...row, key };
    } catch (err) {
      if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw errors.notFound('ENTERPRISE_NOT_FOUND', `no enterprise ${enterpriseId}`);
      throw err;
    }
  }

  listKeys(enterpriseId?: string): Promise<repo.ApiKeyRow[]> {
    return repo.listApiKeys(this.pool, enterpriseId === undefined ? undefined : checkId(enterpriseId, 'enterpriseId'));
  }

  getKey(id: string): Promise<repo.ApiKeyRow | undefined> {
    return repo.findApiKey(this.pool, checkId(id, 'key id'));
  }

  /** Whether the key may still be used: it exists, is not revoked and has not expired. */
  async isKeyValid(id: string): Promise<boolean> {
    const key = await this.getKey(id);
    return key !== undefined && key.revokedAt === null && (key.expiresAt === null || Date.parse(key.expiresAt) > Date.now());
  }

  /** Revokes a key; every process refuses it from the next request on. `allowed` may refuse it (inside the transaction, the key row locked). */
  async revokeKey(id: string, by: AuditContext = CLI_CONTEXT, allowed?: (tx: Db, key: repo.ApiKeyRow) => Promise<void>): Promise<repo.ApiKeyRow> {
    const row = await withTransaction(this.pool, async (tx) => {
      const before = await repo.findApiKey(tx, checkId(id, 'key id'), true);
      if (!before) throw errors.notFound('KEY_NOT_FOUND', `no API key ${id}`);
      await allowed?.(tx, before);
      const revoked = await repo.revokeApiKey(tx, id);
      if (!revoked) throw errors.notFound('KEY_NOT_FOUND', `no API key ${id}`);
      await this.audit.append(tx, [{ context: by, action: 'key.revoke', target: id, before, after: revoked, detail: { role: revoked.role, enterpriseId: revoked.enterpriseId } }]);
      return revoked;
    });
    await this.changes.publish();
    return row;
  }

  /**
   * An enterprise key's view of keys: its enterprise's, never another's; a key restricted to some
   * prefixes sees only the keys restricted within them (those it may also revoke), itself included.
   */
  async listOwnKeys(actor: KeyActor): Promise<repo.ApiKeyRow[]> {
    const keys = await repo.listApiKeys(this.pool, ownEnterprise(actor));
    const own = keys.find((k) => k.id === actor.keyId);
    if (!own) return [];
    const mine = own.prefixes;
    if (!mine) return keys;
    return keys.filter((k) => k.prefixes !== null && k.prefixes.every((p) => mine.includes(p)));
  }

  /**
   * An enterprise key creates a key for its own enterprise, never with more rights than its own:
   * role enterprise; prefixes among its own (among its restriction, when it has one, which is also
   * the default); expiring no later than itself.
   */
  async createOwnKey(
    actor: KeyActor,
    input: { role?: Role; label?: string; expiresAt?: string | null; prefixes?: readonly string[] | null },
    by: AuditContext,
  ): Promise<NewKey> {
    const enterpriseId = ownEnterprise(actor);
    if (input.role !== undefined && input.role !== 'enterprise') {
      throw errors.forbidden('ROLE_NOT_ALLOWED', `an enterprise key creates enterprise keys only, not ${input.role} keys`);
    }
    return withTransaction(this.pool, async (tx) => {
      const own = await repo.findApiKey(tx, actor.keyId);
      if (!own || own.revokedAt !== null) throw errors.invalidKey();
      const allowed = new Set(own.prefixes ?? (await repo.enterprisePrefixes(tx, enterpriseId)));
      let prefixes = input.prefixes ?? own.prefixes;
      if (prefixes) {
        prefixes = prefixes.map((p) => checkedPrefix(p, this.nodePrefix));
        const foreign = prefixes.filter((p) => !allowed.has(p));
        if (foreign.length > 0) {
          throw errors.forbidden('PREFIX_NOT_OWNED', own.prefixes
            ? `this key is restricted to ${own.prefixes.join(', ')}; it cannot give a key ${foreign.join(', ')}`
            : `the enterprise does not hold ${foreign.join(', ')}`);
        }
      }
      let expiresAt = input.expiresAt ?? own.expiresAt;
      // (An unreadable date is left to insertKey's 400.)
      if (expiresAt !== null && Number.isNaN(Date.parse(expiresAt))) throw errors.badRequest('INVALID_EXPIRY', 'expiresAt is not a date-time');
      if (own.expiresAt !== null && expiresAt !== null && Date.parse(expiresAt) > Date.parse(own.expiresAt)) {
        throw errors.forbidden('EXPIRY_NOT_ALLOWED', `this key expires at ${own.expiresAt}; a key it creates must expire no later`);
      }
      expiresAt ??= null;
      return this.insertKey(tx, { role: 'enterprise', enterpriseId, label: input.label, expiresAt, prefixes }, by);
    });
  }

  /**
   * An enterprise key revokes a key of its own enterprise (itself included); another enterprise's
   * key is not found. A key restricted to some prefixes revokes only keys restricted within them.
   */
  revokeOwnKey(actor: KeyActor, id: string, by: AuditContext): Promise<repo.ApiKeyRow> {
    const enterpriseId = ownEnterprise(actor);
    return this.revokeKey(id, by, async (tx, key) => {
      if (key.enterpriseId !== enterpriseId) throw errors.notFound('KEY_NOT_FOUND', `no API key ${id}`);
      const own = await repo.findApiKey(tx, actor.keyId);
      if (own?.prefixes && !(key.prefixes && key.prefixes.every((p) => own.prefixes!.includes(p)))) {
        throw errors.forbidden('KEY_NOT_OWNED', `this key is restricted to ${own.prefixes.join(', ')}; it revokes only keys restricted within them`);
      }
    });
  }

  /** The HMAC of the key an Authorization header presents, if it presents one (to tally refusals without keeping the key). */
  presentedKeyHash(authorization: string | undefined): Buffer | undefined {
    const match = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match && looksLikeApiKey(match[1]!) ? hashApiKey(this.secret, match[1]!) : undefined;
  }

  /** Which keys these hashes are, and whether they are revoked or expired (base64 hash -> key). */
  async keysByHash(hashes: Buffer[]): Promise<Map<string, { id: string; role: Role; state: 'revoked' | 'expired' | 'valid' }>> {
    const rows = await repo.keysByHash(this.pool, hashes);
    return new Map(rows.map((r) => [r.hash.toString('base64'), { id: r.id, role: r.role, state: r.revoked ? 'revoked' : r.expired ? 'expired' : 'valid' }]));
  }

  /** The actor behind an Authorization header value; anonymous without one. */
  async authenticate(authorization: string | undefined): Promise<Actor> {
    if (authorization === undefined || authorization === '') return ANONYMOUS;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw errors.authenticationNeeded('the Authorization header must be "Bearer <api key>"');
    const key = match[1]!;
    if (!looksLikeApiKey(key)) throw errors.invalidKey();
    const hash = hashApiKey(this.secret, key);
    const cacheKey = hash.toString('base64');
    let identity = this.keys.get(cacheKey);
    if (identity === undefined) {
      const token = this.keys.begin();
      identity = (await repo.findKeyIdentity(this.pool, hash)) ?? null;
      this.keys.set(cacheKey, identity, token);
    }
    if (!identity) throw errors.invalidKey();
    this.touch(identity.id);
    return { kind: 'key', keyId: identity.id, role: identity.role, enterpriseId: identity.enterpriseId, prefixes: identity.prefixes };
  }

  /** Records that a key was used, at most once a minute per key and never in the request's way. */
  private touch(id: string): void {
    const now = Date.now();
    if (now - (this.touched.get(id) ?? 0) < TOUCH_INTERVAL_MS) return;
    this.touched.set(id, now);
    repo.touchApiKey(this.pool, id).catch(() => this.touched.delete(id));
  }

  countKeys(db: Db = this.pool): Promise<number> {
    return repo.countApiKeys(db);
  }
}
