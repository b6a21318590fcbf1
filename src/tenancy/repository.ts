/** SQL for enterprises, prefixes and API keys. Every function takes the pool or a transaction. */
import type { Db } from '../infra/postgres.js';
import type { Role } from './api-keys.js';

export interface EnterpriseRow {
  id: string;
  name: string;
  uscc: string;
  createdAt: string;
  prefixes: string[];
}

export interface PrefixRow {
  prefix: string;
  enterpriseId: string;
  state: string;
  createdAt: string;
}

export interface ApiKeyRow {
  id: string;
  hint: string;
  role: Role;
  enterpriseId: string | null;
  label: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  /** null: every prefix of the enterprise; otherwise only these. */
  prefixes: string[] | null;
}

export interface KeyIdentity {
  id: string;
  role: Role;
  enterpriseId: string | null;
  /** Active prefixes this key may write: its enterprise's, narrowed to the key's restriction. */
  prefixes: string[];
  /** When the key expires (ms since the epoch), or null. */
  expiresAt: number | null;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

const ENTERPRISE_SELECT = `
  SELECT e.id, e.name, e.uscc, e.created_at,
         COALESCE(array_agg(p.prefix ORDER BY p.prefix) FILTER (WHERE p.prefix IS NOT NULL), '{}') AS prefixes
  FROM enterprises e LEFT JOIN prefixes p ON p.enterprise_id = e.id`;

type EnterpriseDbRow = { id: string; name: string; uscc: string; created_at: Date; prefixes: string[] };
const toEnterprise = (r: EnterpriseDbRow): EnterpriseRow => ({
  id: r.id,
  name: r.name,
  uscc: r.uscc,
  createdAt: r.created_at.toISOString(),
  prefixes: r.prefixes,
});

export async function insertEnterprise(db: Db, name: string, uscc: string): Promise<EnterpriseRow> {
  const { rows } = await db.query<{ id: string; created_at: Date }>(
    'INSERT INTO enterprises (name, uscc) VALUES ($1, $2) RETURNING id, created_at',
    [name, uscc],
  );
  const row = rows[0]!;
  return { id: row.id, name, uscc, createdAt: row.created_at.toISOString(), prefixes: [] };
}

export async function findEnterprise(db: Db, id: string): Promise<EnterpriseRow | undefined> {
  const { rows } = await db.query<EnterpriseDbRow>(`${ENTERPRISE_SELECT} WHERE e.id = $1 GROUP BY e.id`, [id]);
  return rows[0] ? toEnterprise(rows[0]) : undefined;
}

export async function listEnterprises(db: Db, limit: number, offset: number): Promise<EnterpriseRow[]> {
  const { rows } = await db.query<EnterpriseDbRow>(
    `${ENTERPRISE_SELECT} GROUP BY e.id ORDER BY e.created_at, e.id LIMIT $1 OFFSET $2`,
    [limit, offset],
  );
  return rows.map(toEnterprise);
}

export async function insertPrefix(db: Db, prefix: string, enterpriseId: string): Promise<PrefixRow> {
  const { rows } = await db.query<{ created_at: Date; state: string }>(
    'INSERT INTO prefixes (prefix, enterprise_id) VALUES ($1, $2) RETURNING created_at, state',
    [prefix, enterpriseId],
  );
  return { prefix, enterpriseId, state: rows[0]!.state, createdAt: rows[0]!.created_at.toISOString() };
}

export async function listPrefixes(db: Db, limit: number, offset: number): Promise<PrefixRow[]> {
  const { rows } = await db.query<{ prefix: string; enterprise_id: string; state: string; created_at: Date }>(
    'SELECT prefix, enterprise_id, state, created_at FROM prefixes ORDER BY prefix LIMIT $1 OFFSET $2',
    [limit, offset],
  );
  return rows.map((r) => ({ prefix: r.prefix, enterpriseId: r.enterprise_id, state: r.state, createdAt: r.created_at.toISOString() }));
}

export async function insertApiKey(
  db: Db,
  key: { hash: Buffer; hint: string; role: Role; enterpriseId: string | null; label: string; expiresAt: Date | null; prefixes: string[] | null },
): Promise<ApiKeyRow> {
  const { rows } = await db.query<{ id: string; created_at: Date }>(
    `INSERT INTO api_keys (key_hash, key_hint, role, enterprise_id, label, expires_at, prefixes)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, created_at`,
    [key.hash, key.hint, key.role, key.enterpriseId, key.label, key.expiresAt, key.prefixes],
  );
  return {
    id: rows[0]!.id,
    hint: key.hint,
    role: key.role,
    enterpriseId: key.enterpriseId,
    label: key.label,
    createdAt: rows[0]!.created_at.toISOString(),
    expiresAt: iso(key.expiresAt),
    revokedAt: null,
    lastUsedAt: null,
    prefixes: key.prefixes,
  };
}

type KeyDbRow = {
  id: string;
  key_hint: string;
  role: Role;
  enterprise_id: string | null;
  label: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  prefixes: string[] | null;
};
const toKey = (r: KeyDbRow): ApiKeyRow => ({
  id: r.id,
  hint: r.key_hint,
  role: r.role,
  enterpriseId: r.enterprise_id,
  label: r.label,
  createdAt: r.created_at.toISOString(),
  expiresAt: iso(r.expires_at),
  revokedAt: iso(r.revoked_at),
  lastUsedAt: iso(r.last_used_at),
  prefixes: r.prefixes,
});

export async function listApiKeys(db: Db, enterpriseId: string | undefined): Promise<ApiKeyRow[]> {
  const { rows } = await db.query<KeyDbRow>(
    `SELECT id, key_hint, role, enterprise_id, label, created_at, expires_at, revoked_at, last_used_at, prefixes
     FROM api_keys WHERE ($1::uuid IS NULL OR enterprise_id = $1) ORDER BY created_at, id`,
    [enterpriseId ?? null],
  );
  return rows.map(toKey);
}

/** Marks a key revoked; returns the row, or undefined when no such key exists. */
export async function revokeApiKey(db: Db, id: string): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<KeyDbRow>(
    `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
     RETURNING id, key_hint, role, enterprise_id, label, created_at, expires_at, revoked_at, last_used_at, prefixes`,
    [id],
  );
  return rows[0] ? toKey(rows[0]) : undefined;
}

/** The live key with this hash and its enterprise's active prefixes. */
export async function findKeyIdentity(db: Db, hash: Buffer): Promise<KeyIdentity | undefined> {
  const { rows } = await db.query<{ id: string; role: Role; enterprise_id: string | null; prefixes: string[]; expires_at: Date | null }>(
    `SELECT k.id, k.role, k.enterprise_id, k.expires_at,
            COALESCE(array_agg(p.prefix) FILTER (WHERE p.prefix IS NOT NULL), '{}') AS prefixes
     FROM api_keys k
     LEFT JOIN prefixes p ON p.enterprise_id = k.enterprise_id AND p.state = 'active'
                          AND (k.prefixes IS NULL OR p.prefix = ANY (k.prefixes))
     WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
     GROUP BY k.id`,
    [hash],
  );
  const row = rows[0];
  return row
    ? { id: row.id, role: row.role, enterpriseId: row.enterprise_id, prefixes: row.prefixes, expiresAt: row.expires_at ? row.expires_at.getTime() : null }
    : undefined;
}

/**
 * The prefixes whose figures a key may read: its enterprise's, in any state (a prefix disabled
 * today still has its history), narrowed to the key's restriction. With their states.
 */
export async function readablePrefixes(db: Db, keyId: string): Promise<Array<{ prefix: string; state: string }>> {
  const { rows } = await db.query<{ prefix: string; state: string }>(
    `SELECT p.prefix, p.state FROM api_keys k
     JOIN prefixes p ON p.enterprise_id = k.enterprise_id AND (k.prefixes IS NULL OR p.prefix = ANY (k.prefixes))
     WHERE k.id = $1 ORDER BY p.prefix`,
    [keyId],
  );
  return rows;
}

/** Keys by hash, live or not (to name the keys of refused requests). */
export async function keysByHash(db: Db, hashes: Buffer[]): Promise<Array<{ hash: Buffer; id: string; role: Role; revoked: boolean; expired: boolean }>> {
  const { rows } = await db.query<{ key_hash: Buffer; id: string; role: Role; revoked: boolean; expired: boolean }>(
    `SELECT key_hash, id, role, revoked_at IS NOT NULL AS revoked, COALESCE(expires_at <= now(), false) AS expired
     FROM api_keys WHERE key_hash = ANY ($1::bytea[])`,
    [hashes],
  );
  return rows.map((r) => ({ hash: r.key_hash, id: r.id, role: r.role, revoked: r.revoked, expired: r.expired }));
}

export async function findApiKey(db: Db, id: string, lock = false): Promise<ApiKeyRow | undefined> {
  const { rows } = await db.query<KeyDbRow>(
    `SELECT id, key_hint, role, enterprise_id, label, created_at, expires_at, revoked_at, last_used_at, prefixes FROM api_keys WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0] ? toKey(rows[0]) : undefined;
}

/** Changes a prefix's state; returns the state before, or undefined when there is no such prefix. */
export async function setPrefixState(db: Db, prefix: string, state: string): Promise<{ before: string; row: PrefixRow } | undefined> {
  const { rows } = await db.query<{ before: string; enterprise_id: string; created_at: Date }>(
    `UPDATE prefixes p SET state = $2 FROM (SELECT prefix, state AS before FROM prefixes WHERE prefix = $1 FOR UPDATE) old
     WHERE p.prefix = old.prefix RETURNING old.before, p.enterprise_id, p.created_at`,
    [prefix, state],
  );
  const r = rows[0];
  return r ? { before: r.before, row: { prefix, enterpriseId: r.enterprise_id, state, createdAt: r.created_at.toISOString() } } : undefined;
}

export async function enterprisePrefixes(db: Db, enterpriseId: string): Promise<string[]> {
  const { rows } = await db.query<{ prefix: string }>('SELECT prefix FROM prefixes WHERE enterprise_id = $1 ORDER BY prefix', [enterpriseId]);
  return rows.map((r) => r.prefix);
}

export async function disabledPrefixes(db: Db): Promise<string[]> {
  const { rows } = await db.query<{ prefix: string }>("SELECT prefix FROM prefixes WHERE state = 'disabled'");
  return rows.map((r) => r.prefix);
}

/** Every allocated prefix directly below `parent` (to find the next free one). */
export async function childPrefixes(db: Db, parent: string): Promise<string[]> {
  const { rows } = await db.query<{ prefix: string }>(
    "SELECT prefix FROM prefixes WHERE prefix LIKE $1 || '.%' AND position('.' in substr(prefix, length($1) + 2)) = 0",
    [parent],
  );
  return rows.map((r) => r.prefix);
}

export async function findEnterpriseIdByUscc(db: Db, uscc: string): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM enterprises WHERE uscc = $1', [uscc]);
  return rows[0]?.id;
}

export async function touchApiKey(db: Db, id: string): Promise<void> {
  await db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id]);
}

export async function countApiKeys(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM api_keys');
  return Number(rows[0]!.n);
}

/** One allocated prefix with its enterprise: the directory statistics reports are keyed by. */
export interface PrefixDirectoryRow {
  prefix: string;
  state: string;
  enterpriseId: string;
  enterprise: string;
  uscc: string;
}

export async function prefixDirectory(db: Db): Promise<PrefixDirectoryRow[]> {
  const { rows } = await db.query<{ prefix: string; state: string; enterprise_id: string; name: string; uscc: string }>(
    `SELECT p.prefix, p.state, e.id AS enterprise_id, e.name, e.uscc
     FROM prefixes p JOIN enterprises e ON e.id = p.enterprise_id ORDER BY e.name, p.prefix`,
  );
  return rows.map((r) => ({ prefix: r.prefix, state: r.state, enterpriseId: r.enterprise_id, enterprise: r.name, uscc: r.uscc }));
}

/** How many enterprises there are, and prefixes per state. */
export async function tenancyCounts(db: Db): Promise<{ enterprises: number; prefixes: Record<string, number> }> {
  const [enterprises, prefixes] = await Promise.all([
    db.query<{ n: string }>('SELECT count(*) AS n FROM enterprises'),
    db.query<{ state: string; n: string }>('SELECT state, count(*) AS n FROM prefixes GROUP BY state'),
  ]);
  const byState: Record<string, number> = { pending: 0, active: 0, disabled: 0, rejected: 0 };
  for (const r of prefixes.rows) byState[r.state] = Number(r.n);
  return { enterprises: Number(enterprises.rows[0]!.n), prefixes: byState };
}

/** Whether any API key was ever made on this database (revoked ones too): the server secret is then fixed. */
export async function holdsApiKeys(db: Db): Promise<boolean> {
  // Asked before migrations too: a database without the table holds no keys.
  const table = await db.query<{ t: string | null }>("SELECT to_regclass('api_keys')::text AS t");
  if (table.rows[0]!.t === null) return false;
  const { rows } = await db.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM api_keys) AS any');
  return rows[0]!.any;
}
