/** Keys never reach the log: every request line, error and domain event of a keyed session is searched for them. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { REDACT_PATHS } from '../../src/infra/logger.js';
import { startNode, type RunningNode } from '../../src/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { makeUscc } from '../helpers/uscc.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

let db: TestDatabase;
let node: RunningNode;
let dataDir: string;
const lines: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'snode-redact-'));
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
  // The node's own redaction settings, at trace level so every request line is written.
  const log = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  node = await startNode(loadConfig({ PORT: '0', DATABASE_URL: db.url, DATA_DIR: dataDir, API_KEY_SECRET: 'r'.repeat(40), LOG_LEVEL: 'trace' }), { log });
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('log redaction', () => {
  it('logs no API key, whatever happens to a request carrying one', async () => {
    const admin = (await readFile(path.join(dataDir, 'admin.key'), 'utf8')).trim();
    const ent = await onboard(node.url, admin, makeUscc(881), '88.118.41');
    const secrets = [admin, ent.key];
    await call(node.url, 'PUT', '/api/handles/88.118.41/L', { key: ent.key, body: { values: [url('https://l.example')] } });
    await call(node.url, 'PUT', '/api/handles/88.118.42/L', { key: ent.key, body: { values: [url('https://l.example')] } }); // 403
    await call(node.url, 'PUT', '/api/handles/88.118.41/L', { key: ent.key, body: { values: [{ index: 'x' }] } }); // 400
    const revoked = (await call(node.url, 'POST', '/api/admin/keys', { key: admin, body: { role: 'auditor' } })).body;
    secrets.push(revoked.key);
    await call(node.url, 'DELETE', `/api/admin/keys/${revoked.id}`, { key: admin });
    await call(node.url, 'GET', '/api/audit', { key: revoked.key }); // 401, a revoked key
    await call(node.url, 'GET', '/api/audit', { headers: { authorization: `Bearer ${revoked.key}x` } }); // malformed
    // What a careless log call might pass: the redaction paths catch it.
    node.app.log.warn({ req: { headers: { authorization: `Bearer ${ent.key}` } }, headers: { authorization: `Bearer ${admin}` }, key: admin, created: { key: revoked.key } }, 'redaction probe');
    await new Promise((r) => setTimeout(r, 200));
    expect(lines.some((l) => l.includes('redaction probe') && l.includes('[redacted]'))).toBe(true);
    const log = lines.join('');
    expect(log).toContain('"url":"/api/handles/88.118.41/L"'); // request lines were written
    for (const secret of secrets) expect(log).not.toContain(secret);
    expect(log).not.toContain(secrets[0]!.slice(4, 30));
  });
});
