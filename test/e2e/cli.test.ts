/** The `snode` command line as an operator uses it: help, config errors, migrate, admin. */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { runCli } from '../helpers/process.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
const SECRET = 'test-secret-test-secret-test-secret-0123';
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, API_KEY_SECRET: SECRET, NODE_PREFIX: '88.118' };
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
});

describe('snode CLI', () => {
  it('prints help listing commands, environment variables and exit codes', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const word of ['serve', 'migrate', 'admin', 'config', 'Exit codes']) expect(top.stdout).toContain(word);
    const serve = await runCli(['serve', '--help']);
    for (const name of Object.keys(ConfigSchema.properties)) expect(serve.stdout).toContain(name);
    const key = await runCli(['admin', 'key', 'create', '--help']);
    expect(key.stdout).toMatch(/--role <role>.*choices: "admin", "enterprise", "auditor"/s);
  });

  it('prints each command\'s environment variables and the exit codes in its help (every command: test/unit/cli-help.test.ts)', async () => {
    const importHelp = await runCli(['import', '--help']);
    expect(importHelp.code).toBe(0);
    for (const text of ['DATABASE_URL', 'REDIS_URL', '--prefix <prefix>', '--mode <mode>', 'Exit codes: 0 success, 1']) expect(importHelp.stdout).toContain(text);
    const revoke = await runCli(['admin', 'key', 'revoke', '--help']);
    for (const text of ['API_KEY_SECRET', 'Exit codes: 0 success, 1']) expect(revoke.stdout).toContain(text);
  });

  it('healthcheck exits 0 while a node answers on HOST:PORT and 1 when none does', async () => {
    const own = await createTestDatabase();
    const running = await startTestNode({ databaseUrl: own.url, redis: false, env: { API_KEY_SECRET: SECRET } });
    try {
      const port = new URL(running.url).port;
      const up = await runCli(['healthcheck'], { PORT: port });
      expect(up.code, up.stderr).toBe(0);
      expect(up.stdout).toContain(`http://127.0.0.1:${port}/healthz`);
    } finally {
      await running.close();
      await own.drop();
    }
    const port = new URL(running.url).port;
    const down = await runCli(['healthcheck', '--timeout', '2000'], { PORT: port });
    expect(down.code).toBe(1);
    expect((await runCli(['healthcheck'], { PORT: '0' })).code).toBe(2);
  });

  it('exits 2 on bad usage and on bad configuration, naming the variable', async () => {
    expect((await runCli(['no-such-command'])).code).toBe(2);
    expect((await runCli(['admin', 'key', 'create'])).code).toBe(2);
    const bad = await runCli(['migrate'], { PORT: 'eighty' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('PORT');
    expect(bad.stderr).toContain('eighty');
    for (const timeout of ['abc', '0', '-5', '1.5']) {
      const refused = await runCli(['healthcheck', '--timeout', timeout], { PORT: '8080' });
      expect({ timeout, code: refused.code }).toEqual({ timeout, code: 2 });
      expect(refused.stderr).toContain('whole number of milliseconds');
    }
  });

  it('prints the configuration table', async () => {
    const r = await runCli(['config', '--markdown']);
    expect(r.code).toBe(0);
    for (const name of Object.keys(ConfigSchema.properties)) expect(r.stdout).toContain(`\`${name}\``);
  });

  it('migrates, then manages enterprises, prefixes and keys that a node accepts', async () => {
    const migrated = await runCli(['migrate'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    // Progress: each migration as it is applied; a second run has nothing to do.
    expect(migrated.stderr).toContain('snode: applied migration 0001_init');
    expect(migrated.stdout).toMatch(/^applied \d+ migration\(s\)/);
    expect((await runCli(['migrate'], env)).stdout).toBe('migrations are up to date\n');

    const enterprise = await runCli(['admin', 'enterprise', 'create', '--name', '苏州示例零部件有限公司', '--uscc', makeUscc(701)], env);
    expect(enterprise.code, enterprise.stderr).toBe(0);
    const { id } = JSON.parse(enterprise.stdout);

    const invalid = await runCli(['admin', 'enterprise', 'create', '--name', 'x', '--uscc', '123'], env);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('INVALID_USCC');

    const prefix = await runCli(['admin', 'prefix', 'add', '88.118.66', '--enterprise', id], env);
    expect(prefix.code, prefix.stderr).toBe(0);
    expect(JSON.parse(prefix.stdout)).toMatchObject({ prefix: '88.118.66', enterpriseId: id, state: 'active' });

    const created = await runCli(['admin', 'key', 'create', '--role', 'enterprise', '--enterprise', id, '--label', 'cli'], env);
    expect(created.code, created.stderr).toBe(0);
    const key = JSON.parse(created.stdout);
    expect(key.key).toMatch(/^snk_/);

    const listed = await runCli(['admin', 'key', 'list'], env);
    expect(listed.stdout).toContain(key.id);
    expect(listed.stdout).not.toContain(key.key);

    node = await startTestNode({ databaseUrl: db.url, redis: false, env: { API_KEY_SECRET: SECRET } });
    expect((await call(node.url, 'PUT', '/api/handles/88.118.66/CLI-1', { key: key.key, body: { values: [url('x')] } })).status).toBe(200);

    // The period report from the command line: the same rows as GET /api/stats/report.
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date());
    const quarter = `${today.slice(0, 4)}-Q${Math.floor((Number(today.slice(5, 7)) - 1) / 3) + 1}`;
    const report = await runCli(['stats', 'report', '--period', quarter], env);
    expect(report.code, report.stderr).toBe(0);
    expect(JSON.parse(report.stdout).rows).toEqual([
      expect.objectContaining({ enterprise: '苏州示例零部件有限公司', prefix: '88.118.66', identifiers: 1, creates: 1 }),
    ]);
    const csv = await runCli(['stats', 'report', '--period', quarter, '--csv'], env);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout.charCodeAt(0)).toBe(0xfeff);
    expect(csv.stdout).toContain('苏州示例零部件有限公司,');
    expect((await runCli(['stats', 'report', '--period', 'soon'], env)).code).toBe(1);

    const revoked = await runCli(['admin', 'key', 'revoke', key.id], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await call(node.url, 'PUT', '/api/handles/88.118.66/CLI-2', { key: key.key, body: { values: [url('x')] } })).status).toBe(401);

    const notUuid = await runCli(['admin', 'enterprise', 'show', 'not-a-uuid'], env);
    expect(notUuid.code).toBe(1);
    expect(notUuid.stderr).toBe('snode: INVALID_ID: enterprise id "not-a-uuid" is not a UUID\n');

    const missing = await runCli(['admin', 'enterprise', 'show', '00000000-0000-4000-8000-000000000000'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ENTERPRISE_NOT_FOUND');
    // Thirteen CLI processes, each starting Node and connecting: 30 s run alone here, and four to
    // five times that inside the full suite on two loaded cores (each `snode config` took 3 s
    // alone, 10 s there), which the default 60 s, and then 150 s, did not always cover.
  }, 300_000);

  it('holds names and labels to the limits the HTTP API sets', async () => {
    const longName = await runCli(['admin', 'enterprise', 'create', '--name', 'x'.repeat(201), '--uscc', makeUscc(702)], env);
    expect(longName.code).toBe(1);
    expect(longName.stderr).toMatch(/^snode: INVALID_NAME: enterprise name is 201 characters; at most 200/m);
    const longLabel = await runCli(['admin', 'key', 'create', '--role', 'auditor', '--label', 'y'.repeat(3000)], env);
    expect(longLabel.code).toBe(1);
    expect(longLabel.stderr).toContain('INVALID_LABEL');
  });

  it('pages the lists, saying when a page is full', async () => {
    const page = await runCli(['admin', 'enterprise', 'list', '--limit', '1'], env);
    expect(page.code, page.stderr).toBe(0);
    expect(JSON.parse(page.stdout)).toHaveLength(1);
    expect(page.stderr).toContain('1 shown, there may be more: --offset 1');
    const all = await runCli(['admin', 'prefix', 'list'], env);
    expect(all.stderr).not.toContain('there may be more');
    expect((await runCli(['admin', 'prefix', 'list', '--limit', '0'], env)).code).toBe(2);
  });

  it('makes no new server secret for a database whose keys were made under another one', async () => {
    // The database holds a key made under SECRET; a command run without API_KEY_SECRET, in a
    // DATA_DIR with no secret, would make another secret and hash new keys under it.
    expect((await runCli(['admin', 'key', 'create', '--role', 'auditor'], env)).code).toBe(0);
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'snode-cli-elsewhere-'));
    try {
      const { API_KEY_SECRET: _given, ...withoutSecret } = env;
      const refused = await runCli(['admin', 'key', 'create', '--role', 'auditor'], { ...withoutSecret, DATA_DIR: elsewhere });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/API_KEY_SECRET: not set.*holds API keys/s);
      expect(refused.stdout).toBe('');
      expect(existsSync(path.join(elsewhere, 'secret'))).toBe(false);
      // A command that hashes no key needs no secret: a read after a restore runs anywhere.
      const read = await runCli(['audit', 'head'], { ...withoutSecret, DATA_DIR: elsewhere });
      expect(read.code, read.stderr).toBe(0);
      expect(existsSync(path.join(elsewhere, 'secret'))).toBe(false);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  // After the migrate test, which needs the database fresh.
  it('reports a missing file or database in one line, without a stack trace', async () => {
    const missingFile = await runCli(['import', '/nonexistent/parts.ndjson', '--prefix', '88.118.8'], env);
    expect(missingFile.code).toBe(1);
    expect(missingFile.stderr).toMatch(/^snode: ENOENT: no such file or directory.*parts\.ndjson/m);
    expect(missingFile.stderr).not.toMatch(/\n\s+at /);
    const missingDb = await runCli(['admin', 'enterprise', 'list'], { ...env, DATABASE_URL: `${db.url}_no_such_database` });
    expect(missingDb.code).toBe(1);
    expect(missingDb.stderr).toMatch(/^snode: database ".*_no_such_database" does not exist/m);
    expect(missingDb.stderr).not.toMatch(/\n\s+at /);
  });
});
