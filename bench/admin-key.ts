/**
 * The admin key the bench seeds with. A fresh database gives the first node's DATA_DIR/admin.key;
 * a database that already had keys (a reused --database-url) gives none, so the bench creates a
 * key with the node's own CLI, on the same database and secret, and revokes it at the end.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { NODE_MAIN } from './node-process.js';

const run = promisify(execFile);

export interface AdminKey {
  key: string;
  /** Set when the bench created the key: revoke it when done. */
  createdId?: string;
}

export async function obtainAdminKey(dataDir: string, env: NodeJS.ProcessEnv): Promise<AdminKey> {
  const fromFile = (await readFile(path.join(dataDir, 'admin.key'), 'utf8').catch(() => '')).trim();
  if (fromFile) return { key: fromFile };
  const { stdout } = await run(process.execPath, [NODE_MAIN, 'admin', 'key', 'create', '--role', 'admin', '--label', `bench ${new Date().toISOString()}`], { env: { ...env, LOG_LEVEL: 'warn' } });
  const created = JSON.parse(stdout) as { id: string; key: string };
  return { key: created.key, createdId: created.id };
}

export async function revokeAdminKey(id: string, env: NodeJS.ProcessEnv): Promise<void> {
  await run(process.execPath, [NODE_MAIN, 'admin', 'key', 'revoke', id], { env: { ...env, LOG_LEVEL: 'warn' } });
}
