/** DATA_DIR creation and the generated server secret, on the real file system. */
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { makeDataDir } from '../../src/infra/data-dir.js';
import { createLogger } from '../../src/infra/logger.js';
import { loadServerSecret } from '../../src/infra/secrets.js';

let root: string;
const log = createLogger('silent');
const configFor = (dataDir: string) => loadConfig({ DATA_DIR: dataDir });

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'snode-datadir-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('DATA_DIR', () => {
  it('is made 0700, its missing parents as mkdir makes them (others may pass through)', async () => {
    const dir = path.join(root, 'a', 'b', 'data');
    await makeDataDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const parent of [path.join(root, 'a'), path.join(root, 'a', 'b')]) {
      expect((await stat(parent)).mode & 0o001, parent).toBe(0o001 & ~process.umask());
    }
  });
});

describe('the generated server secret', () => {
  it('is the same for processes starting together, and kept 0600', async () => {
    const dir = path.join(root, 'together');
    const secrets = await Promise.all(Array.from({ length: 8 }, () => loadServerSecret(configFor(dir), log)));
    expect(new Set(secrets.map((s) => s.toString())).size).toBe(1);
    expect(secrets[0]!.length).toBeGreaterThanOrEqual(32);
    expect((await stat(path.join(dir, 'secret'))).mode & 0o777).toBe(0o600);
    expect((await readFile(path.join(dir, 'secret'), 'utf8')).trim()).toBe(secrets[0]!.toString());
    expect((await loadServerSecret(configFor(dir), log)).equals(secrets[0]!)).toBe(true);
  });

  it('refuses a secret file emptied by a crash instead of hashing keys under ""', async () => {
    const dir = path.join(root, 'emptied');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'secret'), '\n');
    await expect(loadServerSecret(configFor(dir), log)).rejects.toThrow(/not a secret of at least 32/);
  });
});
