/** The server secret under which API keys are hashed. */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type Config } from '../config.js';
import { makeDataDir } from './data-dir.js';
import type { Logger } from './logger.js';

/**
 * API_KEY_SECRET when set; otherwise one generated into DATA_DIR/secret (mode 0600) and reused.
 * No secret is generated for a database that holds API keys already (`hasKeys`): they were made
 * under another secret, and keys made under a new one would work nowhere else (a command run
 * outside the node's DATA_DIR, a second process given a DATA_DIR of its own).
 */
export async function loadServerSecret(config: Config, log: Logger, hasKeys?: () => Promise<boolean>): Promise<Buffer> {
  if (!config.API_KEY_SECRET && config.DATABASE_URL) {
    log.warn('API_KEY_SECRET is not set: using DATA_DIR/secret; every process sharing this database must use the same secret or keys made by one are refused by the others');
  }
  const existing = await existingSecret(config);
  if (existing) return existing;
  const file = secretFile(config);
  // (Read again first: a process starting beside this one may have just made it.)
  if (hasKeys && (await hasKeys())) {
    const made = await readSecret(file);
    if (made) return made;
    throw new ConfigError(`invalid configuration:\n  API_KEY_SECRET: not set, and ${file} does not exist, but this database holds API keys made under a secret: set API_KEY_SECRET, or DATA_DIR to the node's (a new secret would make keys no other process accepts)`);
  }
  await makeDataDir(path.dirname(file));
  const secret = randomBytes(32).toString('base64url');
  // Written whole under another name, then linked into place: a process starting at the same
  // moment never reads a half-written (empty) secret, and the first link wins.
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(temp, `${secret}\n`, { mode: 0o600 });
  try {
    await link(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another process created it first: use theirs.
    const theirs = await readSecret(file);
    if (!theirs) throw new Error(`${file} exists but holds no usable secret (fewer than ${MIN_SECRET} characters): remove it or set API_KEY_SECRET`);
    return theirs;
  } finally {
    await rm(temp, { force: true });
  }
  log.info({ file }, 'generated the server secret for API keys');
  return Buffer.from(secret, 'utf8');
}

const MIN_SECRET = 32;

/** API_KEY_SECRET or DATA_DIR/secret when there is one; never generates (commands that hash no key). */
export async function existingSecret(config: Config): Promise<Buffer | undefined> {
  if (config.API_KEY_SECRET) return Buffer.from(config.API_KEY_SECRET, 'utf8');
  return readSecret(secretFile(config));
}

const secretFile = (config: Config): string => path.resolve(config.DATA_DIR, 'secret');

/** The stored secret; undefined when there is none. One too short to be ours (emptied by a crash or a full disk) is refused, never used. */
async function readSecret(file: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (text.length < MIN_SECRET) throw new Error(`${file} holds ${text.length} characters, not a secret of at least ${MIN_SECRET}: remove it (keys hashed under it stop working) or set API_KEY_SECRET`);
  return Buffer.from(text, 'utf8');
}
