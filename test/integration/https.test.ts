/** TLS_CERT and TLS_KEY: the node serves HTTPS itself. */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

let db: TestDatabase;
let node: TestNode;
let dir: string;
let ca: Buffer;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'snode-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  ca = await readFile(path.join(dir, 'cert.pem'));
  node = await startTestNode({ databaseUrl: db.url, redis: false, env: { TLS_CERT: path.join(dir, 'cert.pem'), TLS_KEY: path.join(dir, 'key.pem') } });
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const get = (url: string, options: { ca?: Buffer }) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(url, { ...options }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });

describe('HTTPS', () => {
  it('answers over TLS with the configured certificate, and not over plain HTTP', async () => {
    expect(node.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await get(`${node.url}/healthz`, { ca });
    expect(r.status).toBe(200);
    await expect(get(`${node.url}/healthz`, {})).rejects.toThrow(/self[- ]signed/i);
    await expect(fetch(`${node.url.replace('https', 'http')}/healthz`).then((x) => x.status)).rejects.toThrow();
  });

  it('refuses a certificate without its key at start', async () => {
    const { loadConfig } = await import('../../src/config.js');
    expect(() => loadConfig({ TLS_CERT: path.join(dir, 'cert.pem') })).toThrow(/TLS_CERT, TLS_KEY/);
  });
});
