/** Every acknowledged write survives a restart of the node. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let dataDir: string;
const redisPrefix = newRedisPrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'snode-restart-'));
});

afterAll(async () => {
  await clearRedisPrefix(redisPrefix);
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('restart', () => {
  it('finds every acknowledged write, tenancy included, after the node restarts', async () => {
    const options = { databaseUrl: db.url, redis: true as const, redisKeyPrefix: redisPrefix, dataDir };
    const before = await startTestNode(options);
    const { key } = await onboard(before.url, before.adminKey, makeUscc(501), '88.118.8');
    const acknowledged: string[] = [];
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const r = await call(before.url, 'PUT', `/api/handles/88.118.8/RS-${i}`, { key, body: { values: [url(`v${i}`)] } });
        if (r.status === 200) acknowledged.push(`RS-${i}`);
        return r.status;
      }),
    );
    expect(results.every((s) => s === 200)).toBe(true);
    await call(before.url, 'DELETE', '/api/handles/88.118.8/RS-0', { key });
    await before.close();
    await clearRedisPrefix(redisPrefix); // nothing may come from a warm cache

    const after = await startTestNode(options);
    try {
      expect(after.adminKey).toBe(before.adminKey); // no second bootstrap key
      for (const suffix of acknowledged.filter((s) => s !== 'RS-0')) {
        const r = await call(after.url, 'GET', `/api/handles/88.118.8/${suffix}`);
        expect(r.status, suffix).toBe(200);
        expect(r.body.values[0].data.value).toBe(`v${suffix.slice(3)}`);
      }
      expect((await call(after.url, 'GET', '/api/handles/88.118.8/RS-0')).status).toBe(404);
      // The enterprise key still works after the restart.
      expect((await call(after.url, 'PUT', '/api/handles/88.118.8/RS-NEW', { key, body: { values: [url('x')] } })).status).toBe(200);
    } finally {
      await after.close();
    }
  });
});
