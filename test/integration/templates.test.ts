/**
 * Metadata templates (元数据模板) against a real node on real Postgres and Redis: defining and
 * reading them, who may, and a record that names one at index 1001 checked on every write path
 * (single PUT, batch items, streaming import lines), disabled items, and versions frozen once used.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let key: string;
let otherKey: string;
let auditorKey: string;
let sql: pg.Pool;

const P = '88.118.61';

beforeAll(async () => {
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: true });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(6101), P));
  ({ key: otherKey } = await onboard(node.url, node.adminKey, makeUscc(6102), '88.118.62', 'Other Enterprise'));
  auditorKey = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } })).body.key;
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  if (node) await clearRedisPrefix(node.config.REDIS_KEY_PREFIX);
  await db?.drop();
});

const str = (index: number, type: string, value: string) => ({ index, type, data: { format: 'string', value } });
const follows = (version: string) => str(1001, 'TEMPLATE', version);
const putTemplate = (version: string, body: unknown, k = key, prefix = P) => call(node.url, 'PUT', `/api/templates/${prefix}/${version}`, { key: k, body });
const putRecord = (suffix: string, values: unknown[], k = key) => call(node.url, 'PUT', `/api/handles/${P}/${suffix}`, { key: k, body: { values } });

/** A parts template: serial number (required, 6..12 characters), colour (optional, at most 8), weight (disabled). */
const PARTS = {
  description: '零件',
  items: [
    { name: 'serialNumber', type: 'SERIAL_NO', index: 2001, required: true, minLength: 6, maxLength: 12 },
    { name: 'colour', type: 'COLOUR', index: 2002, maxLength: 8 },
    { name: 'weight', type: 'WEIGHT', index: 2003, required: true, enabled: false },
  ],
};

describe('defining and reading templates', () => {
  it('creates a version (201), answers a repeated PUT of it unchanged (200), and lets anyone read it', async () => {
    const created = await putTemplate('1.0', PARTS);
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ prefix: P, version: '1.0', description: '零件', revision: 1, inUse: false });
    // Defaults filled in, items in index order.
    expect(created.body.items).toEqual([
      { name: 'serialNumber', type: 'SERIAL_NO', index: 2001, required: true, minLength: 6, maxLength: 12, enabled: true },
      { name: 'colour', type: 'COLOUR', index: 2002, required: false, maxLength: 8, enabled: true },
      { name: 'weight', type: 'WEIGHT', index: 2003, required: true, enabled: false },
    ]);
    const again = await putTemplate('1.0', PARTS);
    expect(again.status).toBe(200);
    expect(again.body.revision).toBe(1);

    const read = await call(node.url, 'GET', `/api/templates/${P.toLowerCase()}/1.0`); // anonymous; prefixes are case-insensitive
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    const list = await call(node.url, 'GET', `/api/templates/${P}`);
    expect(list.status).toBe(200);
    expect(list.body.prefix).toBe(P);
    expect(list.body.templates.map((t: { version: string }) => t.version)).toContain('1.0');
    expect((await call(node.url, 'GET', `/api/templates/${P}/9.9`)).body.error.code).toBe('TEMPLATE_NOT_FOUND');
  });

  it('lets only the prefix owner and admins define templates', async () => {
    expect((await call(node.url, 'PUT', `/api/templates/${P}/auth`, { body: PARTS })).status).toBe(401);
    const other = await putTemplate('auth', PARTS, otherKey);
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe('PREFIX_NOT_OWNED');
    expect((await putTemplate('auth', PARTS, auditorKey)).body.error.code).toBe('ROLE_NOT_ALLOWED');
    expect((await putTemplate('auth', PARTS, node.adminKey)).status).toBe(201);
  });

  it('refuses a prefix holding a "/" (an encoded %2F in the path) instead of storing it under the part before it', async () => {
    const slashed = await putTemplate('slash-1', PARTS, key, `${P}%2Fjunk`);
    expect(slashed.status).toBe(400);
    expect(slashed.body.error.code).toBe('INVALID_HANDLE');
    expect((await call(node.url, 'GET', `/api/templates/${P}/slash-1`)).status).toBe(404);
  });

  it('refuses malformed definitions with a reason', async () => {
    const low = await putTemplate('bad', { items: [{ name: 'x', type: 'X', index: 1999 }] });
    expect(low.status).toBe(400);
    expect(low.body.error.code).toBe('VALIDATION_ERROR');
    const twice = await putTemplate('bad', { items: [{ name: 'a', type: 'X', index: 2001 }, { name: 'b', type: 'X', index: 2001 }] });
    expect(twice.body.error).toMatchObject({ code: 'INVALID_TEMPLATE', message: expect.stringContaining('index 2001') });
    const bounds = await putTemplate('bad', { items: [{ name: 'a', type: 'X', index: 2001, minLength: 5, maxLength: 4 }] });
    expect(bounds.body.error.code).toBe('INVALID_TEMPLATE');
    expect((await putTemplate('bad version!', PARTS)).status).toBe(400);
    expect((await call(node.url, 'GET', `/api/templates/${P}/bad`)).status).toBe(404); // nothing was stored
  });
});

describe('a record that names a template (single writes)', () => {
  it('is written when it follows the template, and refused naming the item, index and rule when it does not', async () => {
    const ok = await putRecord('S-1', [url('https://p.example/s1'), follows('1.0'), str(2001, 'SERIAL_NO', '序列号-0001'), str(2002, 'colour', 'red')]);
    expect(ok.status, ok.text).toBe(200);

    const cases: Array<[string, unknown[], { index: number; item?: string; rule: string }]> = [
      ['missing', [follows('1.0')], { index: 2001, item: 'serialNumber', rule: 'required' }],
      ['short', [follows('1.0'), str(2001, 'SERIAL_NO', '12345')], { index: 2001, item: 'serialNumber', rule: 'minLength' }],
      ['long', [follows('1.0'), str(2001, 'SERIAL_NO', '1234567890123')], { index: 2001, item: 'serialNumber', rule: 'maxLength' }],
      ['type', [follows('1.0'), str(2001, 'SERIAL', '123456')], { index: 2001, item: 'serialNumber', rule: 'type' }],
      ['unknown', [follows('1.0'), str(2001, 'SERIAL_NO', '123456'), str(2500, 'NOTE', 'x')], { index: 2500, rule: 'unknown' }],
      ['format', [follows('1.0'), { index: 2001, type: 'SERIAL_NO', data: { format: 'site', value: {} } }], { index: 2001, item: 'serialNumber', rule: 'format' }],
    ];
    for (const [suffix, values, violation] of cases) {
      const r = await putRecord(`BAD-${suffix}`, values);
      expect(r.status, suffix).toBe(400);
      expect(r.body).toMatchObject({ responseCode: 202, code: 'TEMPLATE_VIOLATION', handle: `${P}/BAD-${suffix}` });
      expect(r.body.message).toContain(`template ${P}/1.0`);
      expect(r.body.message).toContain(`index ${violation.index}`);
      expect(r.body.details.template).toBe(`${P}/1.0`);
      expect(r.body.details.violations[0]).toMatchObject(violation);
    }
    const all = await putRecord('BAD-all', [follows('1.0'), str(2002, 'COLOUR', 'ultraviolet')]);
    expect(all.body.message).toContain('(and 1 more)');
    expect(all.body.details.violations.map((v: { rule: string }) => v.rule)).toEqual(['maxLength', 'required']);
    const rows = await sql.query(`SELECT count(*)::int AS n FROM identifiers WHERE prefix = $1 AND suffix LIKE 'BAD-%'`, [P]);
    expect(rows.rows[0].n).toBe(0);
  });

  it('refuses a version the prefix does not have, and a value at 1001 that cannot name one', async () => {
    const missing = await putRecord('NO-T', [follows('7.7')]);
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ code: 'TEMPLATE_NOT_FOUND', responseCode: 202, details: { template: `${P}/7.7` } });
    // Another prefix's version of the same name does not count: a record follows its own prefix's templates.
    await putTemplate('other-only', { items: [{ name: 'a', type: 'A', index: 2001 }] }, otherKey, '88.118.62');
    expect((await putRecord('NO-T2', [follows('other-only')])).body.code).toBe('TEMPLATE_NOT_FOUND');
    const bad = await putRecord('BAD-REF', [{ index: 1001, type: 'TEMPLATE', data: { format: 'base64', value: 'MS4w' } }]);
    expect(bad.body.code).toBe('TEMPLATE_REFERENCE_INVALID');
    expect((await putRecord('BAD-REF2', [follows('not a version')])).body.code).toBe('TEMPLATE_REFERENCE_INVALID');
  });

  it('does not check records that name no template', async () => {
    const r = await putRecord('FREE', [url('https://p.example/free'), str(2001, 'ANYTHING', 'x'), str(2500, 'NOTE', 'free')]);
    expect(r.status).toBe(200);
  });
});

describe('disabled items', () => {
  it('are not required, and a record following the version may not hold them', async () => {
    // weight (2003) is required but disabled: records pass without it (S-1 above); holding it is refused.
    const r = await putRecord('W-1', [follows('1.0'), str(2001, 'SERIAL_NO', '123456'), str(2003, 'WEIGHT', '5 kg')]);
    expect(r.status).toBe(400);
    expect(r.body.details.violations).toEqual([expect.objectContaining({ index: 2003, item: 'weight', rule: 'disabled' })]);
  });
});

describe('changing a version', () => {
  it('may change a version no record names; items are disabled, never deleted', async () => {
    const draft = { items: [{ name: 'lot', type: 'LOT', index: 2001, required: true }, { name: 'line', type: 'LINE', index: 2002 }] };
    expect((await putTemplate('draft', draft)).status).toBe(201);
    const dropped = await putTemplate('draft', { items: [draft.items[0]] });
    expect(dropped.status).toBe(409);
    expect(dropped.body.error).toMatchObject({ code: 'TEMPLATE_ITEM_DROPPED', details: { dropped: [{ index: 2002, item: 'line' }] } });
    expect(dropped.body.error.message).toContain('"enabled": false');
    const disabled = await putTemplate('draft', { items: [draft.items[0], { ...draft.items[1], enabled: false }] });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ revision: 2, inUse: false });
    expect(disabled.body.items[1]).toMatchObject({ index: 2002, enabled: false });
  });

  it('freezes a version once a record names it (a repeated identical PUT still answers 200)', async () => {
    const v = { items: [{ name: 'lot', type: 'LOT', index: 2001, required: true }] };
    await putTemplate('frozen', v);
    expect((await putRecord('F-1', [follows('frozen'), str(2001, 'LOT', 'L-7')])).status).toBe(200);
    const read = await call(node.url, 'GET', `/api/templates/${P}/frozen`);
    expect(read.body.inUse).toBe(true);
    const change = await putTemplate('frozen', { items: [{ ...v.items[0], required: false }] });
    expect(change.status).toBe(409);
    expect(change.body.error.code).toBe('TEMPLATE_IN_USE');
    expect((await putTemplate('frozen', v)).status).toBe(200);
    // Even when the record that named it is gone: "once used" is for good.
    await call(node.url, 'DELETE', `/api/handles/${P}/F-1`, { key });
    expect((await putTemplate('frozen', { items: [{ ...v.items[0], required: false }] })).status).toBe(409);
  });

  it('a refused record does not freeze the version', async () => {
    const v = { items: [{ name: 'lot', type: 'LOT', index: 2001, required: true }] };
    await putTemplate('unused', v);
    expect((await putRecord('U-1', [follows('unused')])).status).toBe(400);
    // Refused in the write's transaction too (If-None-Match on an existing handle): no record names it.
    await putRecord('U-2', [url('https://p.example/u2')]);
    const exists = await call(node.url, 'PUT', `/api/handles/${P}/U-2`, { key, body: { values: [follows('unused'), str(2001, 'LOT', 'x')] }, headers: { 'if-none-match': '*' } });
    expect(exists.status).toBe(409);
    expect((await call(node.url, 'GET', `/api/templates/${P}/unused`)).body.inUse).toBe(false);
    expect((await putTemplate('unused', { items: [{ ...v.items[0], required: false }] })).status).toBe(200);
  });
});

describe('batches', () => {
  it('a create lost to a concurrent writer in a partial batch does not freeze the version it names', async () => {
    const v = { items: [{ name: 'lot', type: 'LOT', index: 2001, required: true }] };
    expect((await putTemplate('race-1', v)).status).toBe(201);
    const holder = await sql.connect();
    try {
      // Another writer's create of the same handle, not committed yet: the batch's lock does not see it.
      await holder.query('BEGIN');
      await holder.query("INSERT INTO identifiers (prefix, suffix, handle_values) VALUES ($1, 'RACE-T', '[]'::json)", [P.toUpperCase()]);
      const batch = call(node.url, 'POST', '/api/handles/batch', { key, body: { operations: [{ op: 'create', handle: `${P}/RACE-T`, values: [follows('race-1'), str(2001, 'LOT', 'x')] }] } });
      const deadline = Date.now() + 10_000;
      for (;;) {
        const { rows } = await sql.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO identifiers%'");
        if (rows[0].n >= 1) break;
        if (Date.now() > deadline) throw new Error('the batch never waited on the other insert');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await holder.query('COMMIT');
      const r = await batch;
      expect(r.status).toBe(200);
      expect(r.body.results[0]).toMatchObject({ responseCode: 101, status: 409 });
    } finally {
      holder.release();
    }
    const template = (await call(node.url, 'GET', `/api/templates/${P}/race-1`)).body;
    expect(template.inUse).toBe(false);
    expect((await putTemplate('race-1', { items: [{ ...v.items[0], required: false }] })).status).toBe(200);
  });

  it('check each item against its template: one bad item fails alone in partial mode, with the violation', async () => {
    const r = await call(node.url, 'POST', '/api/handles/batch', {
      key,
      body: {
        operations: [
          { op: 'create', handle: `${P}/B-1`, values: [follows('1.0'), str(2001, 'SERIAL_NO', 'B000001')] },
          { op: 'create', handle: `${P}/B-2`, values: [follows('1.0')] },
          { op: 'create', handle: `${P}/B-3`, values: [follows('nope')] },
          { op: 'create', handle: `${P}/B-4`, values: [url('https://p.example/b4')] },
          { op: 'upsert', handle: `${P}/B-5`, values: [follows('1.0'), str(2001, 'SERIAL_NO', 'B000005'), str(2003, 'WEIGHT', '1')] },
        ],
      },
    });
    expect(r.status).toBe(200);
    expect(r.body.counts).toEqual({ created: 2, updated: 0, deleted: 0, failed: 3 });
    expect(r.body.results[0]).toMatchObject({ responseCode: 1, status: 201 });
    expect(r.body.results[1]).toMatchObject({ responseCode: 202, status: 400, code: 'TEMPLATE_VIOLATION', details: { template: `${P}/1.0`, violations: [{ index: 2001, item: 'serialNumber', rule: 'required' }] } });
    expect(r.body.results[2]).toMatchObject({ code: 'TEMPLATE_NOT_FOUND', status: 400 });
    expect(r.body.results[3]).toMatchObject({ responseCode: 1, status: 201 });
    expect(r.body.results[4]).toMatchObject({ code: 'TEMPLATE_VIOLATION', details: { violations: [{ index: 2003, rule: 'disabled' }] } });
  });

  it('write nothing in atomic mode when one item breaks its template', async () => {
    const r = await call(node.url, 'POST', '/api/handles/batch', {
      key,
      body: {
        mode: 'atomic',
        operations: [
          { op: 'create', handle: `${P}/A-1`, values: [follows('1.0'), str(2001, 'SERIAL_NO', 'A000001')] },
          { op: 'create', handle: `${P}/A-2`, values: [follows('1.0'), str(2001, 'SERIAL_NO', 'A2')] },
        ],
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.results.map((x: { code?: string }) => x.code)).toEqual(['NOT_APPLIED', 'TEMPLATE_VIOLATION']);
    expect((await call(node.url, 'GET', `/api/handles/${P}/A-1`)).status).toBe(404);
  });

  it('load the templates a batch names once, not once per item', async () => {
    const v = { items: [{ name: 'lot', type: 'LOT', index: 2001, required: true }] };
    await putTemplate('many-a', v);
    await putTemplate('many-b', v);
    const store = node.node.app.templates;
    const batchOf = (from: number) => Array.from({ length: 200 }, (_, i) => ({ op: 'upsert', handle: `${P}/M-${from + i}`, values: [follows(i % 2 ? 'many-a' : 'many-b'), str(2001, 'LOT', `L${i}`)] }));
    let before = store.statements;
    const first = await call(node.url, 'POST', '/api/handles/batch', { key, body: { operations: batchOf(0) } });
    expect(first.body.counts.created).toBe(200);
    // One query for both versions, then (first use) one to lock them and one to mark them used.
    expect(store.statements - before).toBe(3);
    expect(store.peek(P, 'many-a')).toBeUndefined(); // the first use cleared every process's cache
    before = store.statements;
    const second = await call(node.url, 'POST', '/api/handles/batch', { key, body: { operations: batchOf(200) } });
    expect(second.body.counts.created).toBe(200);
    // In use now: loaded once, and nothing more in the transaction.
    expect(store.statements - before).toBe(1);
    expect(store.peek(P, 'many-a')).toBe('in use');
  });
});

describe('imports', () => {
  it('reject the lines that break their template, with the reason, and write the others', async () => {
    const ndjson = [
      { suffix: 'I-1', values: [follows('1.0'), str(2001, 'SERIAL_NO', 'I000001')] },
      { suffix: 'I-2', values: [follows('1.0'), str(2001, 'SERIAL_NO', 'I2')] },
      { suffix: 'I-3', values: [follows('missing')] },
      { suffix: 'I-4', values: [follows('1.0'), str(2001, 'SERIAL_NO', 'I000004'), str(2003, 'WEIGHT', '2')] },
    ].map((l) => JSON.stringify(l)).join('\n');
    const csv = `suffix,1001:TEMPLATE,2001:SERIAL_NO,2002:COLOUR\nC-1,1.0,C000001,red\nC-2,1.0,,blue\nC-3,1.0,C000003,ultraviolet\n`;
    for (const [body, type, expected] of [
      [ndjson, 'application/x-ndjson', [[2, 'TEMPLATE_VIOLATION', 'item "serialNumber" (index 2001) is 2 long'], [3, 'TEMPLATE_NOT_FOUND', 'missing'], [4, 'TEMPLATE_VIOLATION', 'item "weight" (index 2003) is disabled']]],
      [csv, 'text/csv', [[3, 'TEMPLATE_VIOLATION', 'item "serialNumber" (index 2001, type SERIAL_NO) is required but missing'], [4, 'TEMPLATE_VIOLATION', 'item "colour" (index 2002) is 11 long']]],
    ] as const) {
      const started = await call(node.url, 'POST', `/api/imports?prefix=${P}`, { key, raw: body, contentType: type });
      expect(started.status, started.text).toBe(202);
      let job = started.body;
      for (let i = 0; i < 600 && job.state !== 'done' && job.state !== 'failed'; i += 1) {
        await new Promise((r) => setTimeout(r, 50));
        job = (await call(node.url, 'GET', `/api/imports/${job.id}`, { key })).body;
      }
      expect(job.state).toBe('done');
      expect(job.rejected).toBe(expected.length);
      const rejected = parseCsv((await call(node.url, 'GET', `/api/imports/${job.id}/rejected`, { key })).text, { bom: true }).slice(1) as string[][];
      expect(rejected.map(([line, code]) => [Number(line), code])).toEqual(expected.map(([line, code]) => [line, code]));
      expected.forEach(([, , reason], i) => expect(rejected[i]![2]).toContain(reason));
    }
    expect((await call(node.url, 'GET', `/api/handles/${P}/I-1`)).status).toBe(200);
    expect((await call(node.url, 'GET', `/api/handles/${P}/C-1`)).status).toBe(200);
    expect((await call(node.url, 'GET', `/api/handles/${P}/C-3`)).status).toBe(404);
  });
});

describe('bounds', () => {
  it('lists a page at a time, with the total', async () => {
    const all = (await call(node.url, 'GET', `/api/templates/${P}?pageSize=100`)).body;
    expect(all.total).toBe(all.templates.length);
    expect(all.total).toBeGreaterThan(3);
    const first = (await call(node.url, 'GET', `/api/templates/${P}?pageSize=2`)).body;
    const second = (await call(node.url, 'GET', `/api/templates/${P}?pageSize=2&page=2`)).body;
    expect(first).toMatchObject({ prefix: P, total: all.total, page: 1, pageSize: 2 });
    expect([...first.templates, ...second.templates].map((t: { version: string }) => t.version)).toEqual(all.templates.slice(0, 4).map((t: { version: string }) => t.version));
    expect((await call(node.url, 'GET', `/api/templates/${P}?pageSize=101`)).status).toBe(400);
  });

  it(`refuses a version past ${1000} per prefix, and still takes changes to existing ones`, async () => {
    const have = (await sql.query('SELECT count(*)::int AS n FROM templates WHERE prefix = $1', [P])).rows[0].n;
    // Versions up to one short of the bound, written directly (a thousand PUTs would only be slower).
    await sql.query(
      `INSERT INTO templates (prefix, version, items) SELECT $1, 'bulk-' || g, '[{"name":"lot","type":"LOT","index":2001,"required":false,"enabled":true}]'::json FROM generate_series(1, $2) AS g`,
      [P, 999 - have],
    );
    const v = { items: [{ name: 'lot', type: 'LOT', index: 2001, required: false }] };
    expect((await putTemplate('last-one', v)).status).toBe(201);
    const over = await putTemplate('one-too-many', v);
    expect(over.status).toBe(409);
    expect(over.body.error.code).toBe('TEMPLATE_LIMIT');
    expect((await putTemplate('last-one', { items: [{ ...v.items[0], maxLength: 8 }] })).status).toBe(200);
    expect((await call(node.url, 'GET', `/api/templates/${P}?pageSize=1`)).body.total).toBe(1000);
  });
});
