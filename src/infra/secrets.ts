/** The server secret under which API keys are hashed. */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from './logger.js';

/** API_KEY_SECRET when set; otherwise one generated into DATA_DIR/secret (mode 0600) and reused. */
export async function loadServerSecret(config: Config, log: Logger): Promise<Buffer> {
  if (config.API_KEY_SECRET) return Buffer.from(config.API_KEY_SECRET, 'utf8');
  if (config.DATABASE_URL) {
    log.warn('API_KEY_SECRET is not set: using DATA_DIR/secret; every process sharing this database must use the same secret or keys made by one are refused by the others');
  }
  const file = path.resolve(config.DATA_DIR, 'secret');
  try {
    return Buffer.from((await readFile(file, 'utf8')).trim(), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString('base64url');
  try {
    await writeFile(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return Buffer.from((await readFile(file, 'utf8')).trim(), 'utf8');
    throw err;
  }
  log.info({ file }, 'generated the server secret for API keys');
  return Buffer.from(secret, 'utf8');
}
