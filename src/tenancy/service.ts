/** Enterprises, their prefixes and API keys: the logic behind /api/admin and `snode admin`. */
import type pg from 'pg';
import { InvalidHandleError, isChildPrefix, normalisePrefix } from '../handle/handle.js';
import { usccProblem } from '../handle/uscc.js';
import { errors } from '../infra/errors.js';
import { FOREIGN_KEY_VIOLATION, sqlState, UNIQUE_VIOLATION, type Db } from '../infra/postgres.js';
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

export class TenancyService {
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly secret: Buffer,
    readonly nodePrefix: string,
  ) {}

  async createEnterprise(input: { name: string; uscc: string }): Promise<repo.EnterpriseRow> {
    const name = input.name.trim();
    if (name.length === 0) throw errors.badRequest('INVALID_NAME', 'enterprise name is empty');
    const uscc = input.uscc.trim().toUpperCase();
    const problem = usccProblem(uscc);
    if (problem) throw errors.badRequest('INVALID_USCC', problem);
    try {
      return await repo.insertEnterprise(this.pool, name, uscc);
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

  async addPrefix(enterpriseId: string, prefixInput: string): Promise<repo.PrefixRow> {
    let prefix: string;
    try {
      prefix = normalisePrefix(prefixInput.trim());
    } catch (err) {
      if (err instanceof InvalidHandleError) throw errors.badRequest('INVALID_PREFIX', err.message);
      throw err;
    }
    if (!isChildPrefix(prefix, this.nodePrefix)) {
      throw errors.badRequest('PREFIX_OUTSIDE_NODE', `an enterprise prefix is one segment below the node prefix ${this.nodePrefix} (like ${this.nodePrefix}.8); got ${prefix}`);
    }
    try {
      return await repo.insertPrefix(this.pool, prefix, checkId(enterpriseId, 'enterprise id'));
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) throw errors.conflict('PREFIX_TAKEN', `prefix ${prefix} is allocated already`);
      if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw errors.notFound('ENTERPRISE_NOT_FOUND', `no enterprise ${enterpriseId}`);
      throw err;
    }
  }

  listPrefixes(limit = 10000, offset = 0): Promise<repo.PrefixRow[]> {
    return repo.listPrefixes(this.pool, limit, offset);
  }

  async createKey(
    input: { role: Role; enterpriseId?: string | null; label?: string; expiresAt?: string | null },
    db: Db = this.pool,
  ): Promise<NewKey> {
    const enterpriseId = input.enterpriseId ? checkId(input.enterpriseId, 'enterpriseId') : null;
    if (input.role === 'enterprise' && !enterpriseId) throw errors.badRequest('ENTERPRISE_REQUIRED', 'an enterprise key needs enterpriseId');
    if (input.role !== 'enterprise' && enterpriseId) {
      throw errors.badRequest('ENTERPRISE_NOT_ALLOWED', `an ${input.role} key belongs to the node, not to an enterprise`);
    }
    let expiresAt: Date | null = null;
    if (input.expiresAt) {
      expiresAt = new Date(input.expiresAt);
      if (Number.isNaN(expiresAt.getTime())) throw errors.badRequest('INVALID_EXPIRY', 'expiresAt is not a date-time');
      if (expiresAt.getTime() <= Date.now()) throw errors.badRequest('INVALID_EXPIRY', 'expiresAt is in the past');
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
      });
      return { ...row, key };
    } catch (err) {
      if (sqlState(err) === FOREIGN_KEY_VIOLATION) throw errors.notFound('ENTERPRISE_NOT_FOUND', `no enterprise ${enterpriseId}`);
      throw err;
    }
  }

  listKeys(enterpriseId?: string): Promise<repo.ApiKeyRow[]> {
    return repo.listApiKeys(this.pool, enterpriseId === undefined ? undefined : checkId(enterpriseId, 'enterpriseId'));
  }

  async revokeKey(id: string): Promise<repo.ApiKeyRow> {
    const row = await repo.revokeApiKey(this.pool, checkId(id, 'key id'));
    if (!row) throw errors.notFound('KEY_NOT_FOUND', `no API key ${id}`);
    return row;
  }

  /** The actor behind an Authorization header value; anonymous without one. */
  async authenticate(authorization: string | undefined): Promise<Actor> {
    if (authorization === undefined || authorization === '') return ANONYMOUS;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw errors.authenticationNeeded('the Authorization header must be "Bearer <api key>"');
    const key = match[1]!;
    if (!looksLikeApiKey(key)) throw errors.invalidKey();
    const identity = await repo.findKeyIdentity(this.pool, hashApiKey(this.secret, key));
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
