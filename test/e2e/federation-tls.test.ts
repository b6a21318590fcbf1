/**
 * Secure transport: a top-level node serving HTTPS (a self-signed certificate made with the
 * machine's openssl) and a secondary whose UPSTREAM_URLS say https. The secondary syncs when it
 * trusts the certificate (NODE_EXTRA_CA_CERTS), and a client that does not trust it is refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { runCli, startProcess, type NodeProcess } from '../helpers/process.js';
import { makeUscc } from '../helpers/uscc.js';

const SECRET = 'test-secret-test-secret-test-secret-0123';
let dir: string;
let topDb: TestDatabase;
let nodeDb: TestDatabase;
const procs: NodeProcess[] = [];
let topEnv: Record<string, string>;
let nodeEnv: Record<string, string>;
let cert: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'snode-tls-'));
  [topDb, nodeDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  topEnv = { DATABASE_URL: topDb.url, DATA_DIR: path.join(dir, 'top'), API_KEY_SECRET: SECRET, ROLE: 'top-level', NODE_ID: 'top', NODE_PREFIX: '99', PORT: '0', TLS_CERT: cert, TLS_KEY: key };
  nodeEnv = { DATABASE_URL: nodeDb.url, DATA_DIR: path.join(dir, 'node'), API_KEY_SECRET: SECRET, NODE_ID: 'node-t', NODE_PREFIX: '88.118', PORT: '0', HEARTBEAT_INTERVAL_MS: '500', SYNC_BATCH_WAIT_MS: '20', SYNC_RETRY_BASE_MS: '50', SYNC_RETRY_MAX_MS: '500' };
  const printed = await runCli(['federation', 'public-key'], nodeEnv);
  expect(printed.code, printed.stderr).toBe(0);
  await writeFile(path.join(dir, 'node.pub.pem'), printed.stdout);
  const registered = await runCli(['admin', 'register-node', '--id', 'node-t', '--prefix', '88.118', '--public-key', path.join(dir, 'node.pub.pem')], topEnv);
  expect(registered.code, registered.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  for (const p of procs) {
    await Promise.race([p.stop(), new Promise((r) => setTimeout(r, 15_000))]);
    p.kill();
  }
  await Promise.all([topDb?.drop(), nodeDb?.drop()]);
  await rm(dir, { recursive: true, force: true });
});

describe('federation over HTTPS', () => {
  it('syncs to an https top-level node it trusts, and a client that does not trust it is refused', async () => {
    const top = await startProcess(topEnv, [process.execPath, 'dist/main.js', 'serve'], undefined, 120_000);
    procs.push(top);
    expect(top.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    nodeEnv.UPSTREAM_URLS = top.url;
    const node = await startProcess({ ...nodeEnv, NODE_EXTRA_CA_CERTS: cert }, [process.execPath, 'dist/main.js', 'serve'], undefined, 120_000);
    procs.push(node);
    const adminKey = (await readFile(path.join(nodeEnv.DATA_DIR!, 'admin.key'), 'utf8')).trim();
    const { key } = await onboard(node.url, adminKey, makeUscc(6001), '88.118.8');
    expect((await call(node.url, 'PUT', '/api/handles/88.118.8/TLS-1', { key, body: { values: [url('https://t.example/1')] } })).status).toBe(200);

    const deadline = Date.now() + 60_000;
    let st;
    for (;;) {
      st = (await call(node.url, 'GET', '/api/federation/status', { key: adminKey })).body;
      if (st.outbox.backlog === 0 && st.outbox.ackedSeq >= 1) break;
      if (Date.now() > deadline) throw new Error(`not drained: ${JSON.stringify(st)}\n${node.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(st.upstream.current).toBe(top.url);
    const client = new pg.Client({ connectionString: topDb.url });
    await client.connect();
    try {
      expect((await client.query(`SELECT suffix FROM federation_escrow WHERE node_id = 'node-t'`)).rows).toEqual([{ suffix: 'TLS-1' }]);
    } finally {
      await client.end();
    }

    const trusted = await runCli(['federation', 'verify'], { ...nodeEnv, NODE_EXTRA_CA_CERTS: cert });
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(JSON.parse(trusted.stdout)).toMatchObject({ inSync: true });
    const untrusted = await runCli(['federation', 'verify'], nodeEnv);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/certificate/i);
  });
});
