/** The first admin key: created on the first start against an empty database. */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from '../infra/logger.js';
import { withTransaction } from '../infra/postgres.js';
import type { TenancyService } from './service.js';

// Processes starting together against one empty database queue here; only the first creates a key.
const BOOTSTRAP_LOCK = 7_340_002;

export const ADMIN_KEY_FILE = 'admin.key';

/**
 * When no API key exists, creates an admin key and writes it to DATA_DIR/admin.key (mode 0600).
 * The file is written before the key commits, so a key nobody can read is never left behind.
 */
export async function ensureFirstAdminKey(pool: pg.Pool, tenancy: TenancyService, dataDir: string, log: Logger): Promise<string | undefined> {
  return withTransaction(pool, async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
    if ((await tenancy.countKeys(tx)) > 0) return undefined;
    const created = await tenancy.createKey({ role: 'admin', label: 'first admin key (bootstrap)' }, { keyId: null, role: 'system' }, tx);
    const file = path.resolve(dataDir, ADMIN_KEY_FILE);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, `${created.key}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    log.info({ file, keyId: created.id }, 'empty database: created the first admin key; read it from this file');
    return file;
  });
}
