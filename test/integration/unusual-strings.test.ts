/**
 * Values holding U+0000 or a lone surrogate are valid JSON (as \u0000, \ud800) and were always
 * stored. Writes that send rows to Postgres as one JSON document must keep storing them, on every
 * write path: a grouped create, a replacement, a batch and the federation outbox. (Sent as nested
 * json, json_to_recordset unescaped them and failed the whole statement: 22P05, 22P02.)
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { freePort } from '../helpers/ports.js';
import { makeUscc } from '../helpers/uscc.js';

const PREFIX = '88.118.36';
const ODD = 'a\u0000b\ud800c\udfffd "quoted" \\ back';
const value = (text: string) => [{ index: 2, type: 'EMAIL', data: { format: 'string', value: text } }];

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let key: string;
const redisPrefix = newRedisPrefix();

beforeAll(async () => {
  // The top-level node is down (nothing listens): every change stays in the outbox, to be read back.
  const port = await freePort();
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix, env: { UPSTREAM_URLS: `http://127.0.0.1:${port}`, SYNC_RETRY_MAX_MS: '60000', NODE_ID: 'node-odd' } });
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(936), PREFIX));
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await clearRedisPrefix(redisPrefix);
  await db?.drop();
});

/** The stored text of a record and of its newest outbox row: both exactly JSON.stringify(values). */
async function stored(suffix: string): Promise<{ record: string; outbox: string; version: number }> {
  const record = await sql.query('SELECT handle_values::text AS t, version::int AS v FROM identifiers WHERE prefix = $1 AND suffix = $2', [PREFIX, suffix]);
  const outbox = await sql.query('SELECT handle_values::text AS t FROM federation_outbox WHERE prefix = $1 AND suffix = $2 ORDER BY version DESC LIMIT 1', [PREFIX, suffix]);
  return { record: record.rows[0]?.t, outbox: outbox.rows[0]?.t, version: record.rows[0]?.v };
}

async function resolvedValue(suffix: string): Promise<unknown> {
  const r = await call(node.url, 'GET', `/api/handles/${PREFIX}/${suffix}`);
  expect(r.status).toBe(200);
  return r.body.values.find((v: { index: number }) => v.index === 2).data.value;
}

describe('values with U+0000 and lone surrogates', () => {
  it('are stored and resolved as sent by a grouped create and a replacement', async () => {
    const created = await call(node.url, 'PUT', `/api/handles/${PREFIX}/ODD-1?overwrite=false`, { key, body: { values: value(ODD) } });
    expect(created.status).toBe(201);
    let s = await stored('ODD-1');
    expect(JSON.parse(s.record)[0].data.value).toBe(ODD);
    expect(s.outbox).toBe(s.record);
    expect(await resolvedValue('ODD-1')).toBe(ODD);

    const replaced = await call(node.url, 'PUT', `/api/handles/${PREFIX}/ODD-1`, { key, body: { values: value(`${ODD}2`) }, headers: { 'if-match': '"1"' } });
    expect(replaced.status).toBe(200);
    s = await stored('ODD-1');
    expect(s.version).toBe(2);
    expect(JSON.parse(s.record)[0].data.value).toBe(`${ODD}2`);
    expect(s.outbox).toBe(s.record);
    expect(await resolvedValue('ODD-1')).toBe(`${ODD}2`);
  });

  it('are stored by a batch, in creates and updates, without failing the other items', async () => {
    const first = await call(node.url, 'POST', '/api/handles/batch', {
      key,
      body: { operations: [
        { op: 'create', handle: `${PREFIX}/ODD-B1`, values: value(ODD) },
        { op: 'create', handle: `${PREFIX}/PLAIN-B1`, values: value('plain') },
      ] },
    });
    expect(first.status).toBe(200);
    expect(first.body.counts).toMatchObject({ created: 2, failed: 0 });
    const second = await call(node.url, 'POST', '/api/handles/batch', {
      key,
      body: { operations: [{ op: 'update', handle: `${PREFIX}/ODD-B1`, version: 1, values: value(`${ODD}!`) }] },
    });
    expect(second.body.counts).toMatchObject({ updated: 1, failed: 0 });
    const s = await stored('ODD-B1');
    expect(s.version).toBe(2);
    expect(JSON.parse(s.record)[0].data.value).toBe(`${ODD}!`);
    expect(s.outbox).toBe(s.record);
    expect(await resolvedValue('ODD-B1')).toBe(`${ODD}!`);
    expect(await resolvedValue('PLAIN-B1')).toBe('plain');
  });
});
