/**
 * Reading another node's answer (GET /api/handles/...) as a record. The other node is played by a
 * plain HTTP server so that it can answer what a real node never would.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHandle } from '../../src/handle/handle.js';
import { HttpPools } from '../../src/federation/http-pools.js';
import { FetchFailed, fetchRecord } from '../../src/federation/record-fetch.js';

const VALID = { index: 1, type: 'URL', data: { format: 'string', value: 'https://a.example' }, ttl: 86400, timestamp: '2026-01-01T00:00:00.000Z' };
const answers = new Map<string, { status: number; body: string; etag?: string }>([
  ['/api/handles/88.200.1/OK', { status: 200, etag: '"7"', body: JSON.stringify({ responseCode: 1, handle: '88.200.1/OK', values: [VALID] }) }],
  ['/api/handles/88.200.1/NO-TIMESTAMP', { status: 200, body: JSON.stringify({ responseCode: 1, values: [VALID, { ...VALID, index: 2, timestamp: undefined }] }) }],
  ['/api/handles/88.200.1/TYPE-NUMBER', { status: 200, body: JSON.stringify({ responseCode: 1, values: [{ ...VALID, type: 5 }] }) }],
  ['/api/handles/88.200.1/NO-DATA', { status: 200, body: JSON.stringify({ responseCode: 1, values: [{ index: 1, type: 'URL', ttl: 1, timestamp: 'x' }] }) }],
  ['/api/handles/88.200.1/NULL-VALUE', { status: 200, body: JSON.stringify({ responseCode: 1, values: [null] }) }],
  ['/api/handles/88.200.1/NOT-JSON', { status: 200, body: '<html>proxy error</html>' }],
  ['/api/handles/88.200.1/NO-VALUES', { status: 200, body: JSON.stringify({ responseCode: 1 }) }],
]);

let server: http.Server;
let base: string;
const pools = new HttpPools({ connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 });

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const a = answers.get(req.url ?? '');
    if (!a) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(a.status, { 'content-type': 'application/json', ...(a.etag ? { etag: a.etag } : {}) }).end(a.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await pools.close();
  await new Promise((resolve) => server.close(resolve));
});

describe("another node's answer", () => {
  it('gives the record with the version from the ETag', async () => {
    const fetched = await fetchRecord(pools, base, parseHandle('88.200.1/OK'), 1);
    expect(fetched.record).toEqual({ handle: '88.200.1/OK', version: 7, values: [VALID] });
    expect((await fetchRecord(pools, base, parseHandle('88.200.1/GONE'), 1)).record).toBeUndefined();
  });

  it('refuses values of the wrong shape, and bodies that are not a record, as a failed fetch', async () => {
    for (const suffix of ['NO-TIMESTAMP', 'TYPE-NUMBER', 'NO-DATA', 'NULL-VALUE', 'NOT-JSON', 'NO-VALUES']) {
      const failed = await fetchRecord(pools, base, parseHandle(`88.200.1/${suffix}`), 1).catch((err: unknown) => err);
      expect(failed, suffix).toBeInstanceOf(FetchFailed);
    }
    const named = await fetchRecord(pools, base, parseHandle('88.200.1/NO-TIMESTAMP'), 1).catch((err: Error) => err.message);
    expect(named).toMatch(/values\[1\]/);
  });
});
