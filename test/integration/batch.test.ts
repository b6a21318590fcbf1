/** POST /api/handles/batch against a real node on real Postgres and Redis. */
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
let sql: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: true });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(71), '88.118.71'));
  ({ key: otherKey } = await onboard(node.url, node.adminKey, makeUscc(72), '88.118.72', 'Other Enterprise'));
  sql = new pg.Pool({ connectionString: db.url, max: 4 });
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  if (node) await clearRedisPrefix(node.config.REDIS_KEY_PREFIX);
  await db?.drop();
});

type Op = { op: string; handle: string; values?: unknown[]; version?: number } | Record<string, unknown>;
const batch = (operations: Op[], options: { mode?: string; key?: string; idem?: string } = {}) =>
  call(node.url, 'POST', '/api/handles/batch', {
    key: options.key ?? key,
    body: { ...(options.mode ? { mode: options.mode } : {}), operations },
    headers: options.idem ? { 'idempotency-key': options.idem } : {},
  });
const rows = async (prefix: string, like = '%') =>
  (await sql.query('SELECT suffix, version FROM identifiers WHERE prefix = $1 AND suffix LIKE $2 ORDER BY suffix', [prefix, like])).rows.map((r) => [r.suffix, Number(r.version)]);
const resolve = (handle: string) => call(node.url, 'GET', `/api/handles/${handle}`);
/** Registrations counted for a prefix: rollups plus deltas not folded yet (the worker folds in the background). */
const deltas = async (prefix: string) =>
  (
    await sql.query(
      `SELECT coalesce(sum(c),0)::int AS c, coalesce(sum(u),0)::int AS u, coalesce(sum(d),0)::int AS d FROM (
         SELECT creates AS c, updates AS u, deletes AS d FROM stats_registration_deltas WHERE prefix = $1
         UNION ALL SELECT creates, updates, deletes FROM stats_registrations WHERE prefix = $1 AND grain = 't') s`,
      [prefix],
    )
  ).rows[0];

describe('POST /api/handles/batch', () => {
  it('applies creates, upserts, updates with an expected version and deletes, answering each item in order', async () => {
    await batch([
      { op: 'create', handle: '88.118.71/U-1', values: [url('u1')] },
      { op: 'create', handle: '88.118.71/D-1', values: [url('d1')] },
    ]);
    expect((await resolve('88.118.71/U-1')).body.values[0].data.value).toBe('u1'); // now cached in L1 and Redis
    const r = await batch([
      { op: 'create', handle: '88.118.71/C-1', values: [url('c1')] },
      { op: 'upsert', handle: '88.118.71/C-2', values: [url('c2')] },
      { op: 'upsert', handle: '88.118.71/U-1', values: [url('u1-bis')] },
      { op: 'update', handle: '88.118.71/U-1', values: [url('never')], version: 1 },
      { op: 'delete', handle: '88.118.71/D-1', version: 1 },
    ]);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ mode: 'partial', applied: true, counts: { created: 2, updated: 1, deleted: 1, failed: 1 } });
    expect(r.body.results).toEqual([
      { responseCode: 1, handle: '88.118.71/C-1', op: 'create', status: 201, version: 1 },
      { responseCode: 1, handle: '88.118.71/C-2', op: 'upsert', status: 201, version: 1 },
      { responseCode: 1, handle: '88.118.71/U-1', op: 'upsert', status: 200, version: 2 },
      expect.objectContaining({ responseCode: 2, handle: '88.118.71/U-1', op: 'update', status: 400, code: 'DUPLICATE_HANDLE' }),
      { responseCode: 1, handle: '88.118.71/D-1', op: 'delete', status: 200, version: 1 },
    ]);
    expect(await rows('88.118.71')).toEqual([['C-1', 1], ['C-2', 1], ['U-1', 2]]);
    // The cache was invalidated: the update and the delete show at once.
    expect((await resolve('88.118.71/U-1')).body.values[0].data.value).toBe('u1-bis');
    expect((await resolve('88.118.71/D-1')).status).toBe(404);
  });

  it('reports exactly which items of a partial batch failed and why, writing the others', async () => {
    await batch([
      { op: 'create', handle: '88.118.71/P-EXISTS', values: [url('x')] },
      { op: 'create', handle: '88.118.71/P-VER', values: [url('x')] },
    ]);
    const r = await batch([
      { op: 'create', handle: '88.118.71/P-OK', values: [url('ok')] },
      { op: 'create', handle: '88.118.71/P-EXISTS', values: [url('y')] },
      { op: 'update', handle: '88.118.71/P-MISSING', values: [url('y')] },
      { op: 'update', handle: '88.118.71/P-VER', values: [url('y')], version: 9 },
      { op: 'delete', handle: '88.118.71/P-GONE' },
      { op: 'create', handle: '88.118.72/NOT-MINE', values: [url('y')] },
      { op: 'create', handle: '88.119/OUTSIDE', values: [url('y')] },
      { op: 'create', handle: 'no-slash', values: [url('y')] },
      { op: 'create', handle: '88.118.71/BAD-VALUE', values: [{ index: 1, type: 'URL', data: { format: 'string', value: 'x' }, ttl: -1 }] },
      { op: 'create', handle: '88.118.71/DUP-INDEX', values: [url('a', 5), url('b', 5)] },
      { op: 'frobnicate', handle: '88.118.71/X' },
      { op: 'delete', handle: '88.118.71/P-OK2', values: [url('z')] },
      { op: 'create', handle: '88.118.71/NO-VALUES' },
      { op: 'upsert', handle: '88.118.71/V', values: [url('v')], version: 1 },
      'not an object' as unknown as Op,
    ]);
    expect(r.status).toBe(200);
    const summary = r.body.results.map((x: { status: number; code?: string; responseCode: number }) => [x.status, x.code ?? 'OK', x.responseCode]);
    expect(summary).toEqual([
      [201, 'OK', 1],
      [409, 'HANDLE_ALREADY_EXISTS', 101],
      [404, 'HANDLE_NOT_FOUND', 100],
      [412, 'PRECONDITION_FAILED', 2],
      [404, 'HANDLE_NOT_FOUND', 100],
      [403, 'PREFIX_NOT_OWNED', 400],
      [403, 'PREFIX_OUTSIDE_NODE', 400],
      [400, 'INVALID_HANDLE', 102],
      [400, 'INVALID_ITEM', 2],
      [400, 'INVALID_VALUE', 202],
      [400, 'INVALID_ITEM', 2],
      [400, 'INVALID_ITEM', 2],
      [400, 'INVALID_ITEM', 2],
      [400, 'INVALID_ITEM', 2],
      [400, 'INVALID_ITEM', 2],
    ]);
    expect(r.body.results[9].message).toMatch(/index 5/);
    expect(r.body.counts).toEqual({ created: 1, updated: 0, deleted: 0, failed: 14 });
    expect(await rows('88.118.71', 'P-%')).toEqual([['P-EXISTS', 1], ['P-OK', 1], ['P-VER', 1]]);
    expect(await rows('88.118.72')).toEqual([]);
  });

  it('writes nothing when one item of an atomic batch fails, even the last of many', async () => {
    const ops: Op[] = Array.from({ length: 999 }, (_, i) => ({ op: 'create', handle: `88.118.71/A-${i}`, values: [url(`a${i}`)] }));
    await batch([{ op: 'create', handle: '88.118.71/A-TAKEN', values: [url('t')] }]);
    const before = await deltas('88.118.71');
    const r = await batch([...ops, { op: 'create', handle: '88.118.71/A-TAKEN', values: [url('t2')] }], { mode: 'atomic' });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ mode: 'atomic', applied: false, counts: { created: 0, failed: 1000 } });
    expect(r.body.results[0]).toMatchObject({ code: 'NOT_APPLIED', status: 409 });
    expect(r.body.results[999]).toMatchObject({ code: 'HANDLE_ALREADY_EXISTS', status: 409 });
    expect(await rows('88.118.71', 'A-%')).toEqual([['A-TAKEN', 1]]);
    expect(await deltas('88.118.71')).toEqual(before);
    // An item that fails its checks (no database needed) fails the atomic batch the same way.
    const bad = await batch([...ops.slice(0, 10), { op: 'create', handle: '88.118.71/A-X', values: [] }], { mode: 'atomic' });
    expect(bad.status).toBe(400);
    expect(await rows('88.118.71', 'A-%')).toEqual([['A-TAKEN', 1]]);
    // And once every item is valid, all of them are written.
    const ok = await batch(ops, { mode: 'atomic' });
    expect(ok.status).toBe(200);
    expect(ok.body.counts).toEqual({ created: 999, updated: 0, deleted: 0, failed: 0 });
    expect((await rows('88.118.71', 'A-%')).length).toBe(1000);
  });

  it('rolls an atomic batch back when the database fails half-way', async () => {
    await sql.query(`CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.suffix = 'BOOM' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$`);
    await sql.query('CREATE TRIGGER refuse_boom BEFORE INSERT ON identifiers FOR EACH ROW EXECUTE FUNCTION refuse_boom()');
    try {
      await batch([{ op: 'create', handle: '88.118.71/DB-OLD', values: [url('old')] }]);
      const before = await deltas('88.118.71');
      const r = await batch(
        [
          { op: 'upsert', handle: '88.118.71/DB-OLD', values: [url('new')] },
          { op: 'create', handle: '88.118.71/DB-1', values: [url('1')] },
          { op: 'create', handle: '88.118.71/BOOM', values: [url('b')] },
          { op: 'create', handle: '88.118.71/DB-2', values: [url('2')] },
        ],
        { mode: 'atomic', idem: 'db-failure' },
      );
      expect(r.status).toBe(500);
      expect(await rows('88.118.71', 'DB-%')).toEqual([['DB-OLD', 1]]);
      // Creates only go as one statement under a savepoint: an error that is not a taken handle
      // still fails the whole batch, in either mode.
      for (const mode of ['atomic', 'partial']) {
        const creates = await batch(
          [
            { op: 'create', handle: '88.118.71/DB-C1', values: [url('1')] },
            { op: 'create', handle: '88.118.71/BOOM', values: [url('b')] },
          ],
          { mode },
        );
        expect(creates.status).toBe(500);
      }
      expect(await rows('88.118.71', 'DB-C%')).toEqual([]);
      expect(await rows('88.118.71', 'BOOM')).toEqual([]);
      expect(await deltas('88.118.71')).toEqual(before);
      expect((await resolve('88.118.71/DB-OLD')).body.values[0].data.value).toBe('old');
      // The failed attempt did not keep its Idempotency-Key: a retry runs again.
      await sql.query('DROP TRIGGER refuse_boom ON identifiers');
      const retry = await batch(
        [
          { op: 'upsert', handle: '88.118.71/DB-OLD', values: [url('new')] },
          { op: 'create', handle: '88.118.71/DB-1', values: [url('1')] },
          { op: 'create', handle: '88.118.71/BOOM', values: [url('b')] },
          { op: 'create', handle: '88.118.71/DB-2', values: [url('2')] },
        ],
        { mode: 'atomic', idem: 'db-failure' },
      );
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotency-replayed')).toBeNull();
    } finally {
      await sql.query('DROP TRIGGER IF EXISTS refuse_boom ON identifiers');
      await sql.query('DROP FUNCTION refuse_boom()');
    }
  });

  it('writes the new handles of a batch of creates once, in rows, audit and statistics, when some handles exist', async () => {
    await batch([{ op: 'create', handle: '88.118.71/SP-3', values: [url('old')] }]);
    const before = await deltas('88.118.71');
    const ops: Op[] = Array.from({ length: 6 }, (_, i) => ({ op: 'create', handle: `88.118.71/SP-${i}`, values: [url(`new${i}`)] }));
    const r = await batch(ops);
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: { status: number }) => x.status)).toEqual([201, 201, 201, 409, 201, 201]);
    expect(await rows('88.118.71', 'SP-%')).toEqual([0, 1, 2, 3, 4, 5].map((i) => [`SP-${i}`, 1]));
    expect((await resolve('88.118.71/SP-3')).body.values[0].data.value).toBe('old');
    const after = await deltas('88.118.71');
    expect(after.c - before.c).toBe(5);
    // The attempt that met SP-3 (all six as one statement) left nothing behind: one entry per write.
    const audited = await sql.query(`SELECT target, count(*)::int AS n FROM audit_log WHERE target LIKE '88.118.71/SP-%' GROUP BY target ORDER BY target`);
    expect(audited.rows).toEqual([0, 1, 2, 3, 4, 5].map((i) => ({ target: `88.118.71/SP-${i}`, n: 1 })));
  });

  it('applies a batch once under concurrent retries with the same Idempotency-Key, and refuses the key with another body', async () => {
    const ops: Op[] = Array.from({ length: 200 }, (_, i) => ({ op: 'upsert', handle: `88.118.71/I-${i}`, values: [url(`i${i}`)] }));
    const before = await deltas('88.118.71');
    const answers = await Promise.all(Array.from({ length: 8 }, () => batch(ops, { idem: 'retry-me' })));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(answers.filter((a) => a.headers.get('idempotency-replayed') === 'true').length).toBe(7);
    for (const a of answers) expect(a.body).toEqual(answers[0]!.body);
    expect(answers[0]!.body.counts.created).toBe(200);
    // Applied once: every record at version 1, and 200 creates counted, not 1600.
    const written = await rows('88.118.71', 'I-%');
    expect(written.length).toBe(200);
    expect(written.every(([, v]) => v === 1)).toBe(true);
    const after = await deltas('88.118.71');
    expect(after.c - before.c).toBe(200);
    expect(after.u - before.u).toBe(0);
    // The same request with its keys in another order is the same request: replayed, not refused.
    const reordered = await call(node.url, 'POST', '/api/handles/batch', {
      key,
      body: { operations: ops.map((o) => Object.fromEntries(Object.entries(o).reverse())) },
      headers: { 'idempotency-key': 'retry-me' },
    });
    expect(reordered.status, reordered.text).toBe(200);
    expect(reordered.headers.get('idempotency-replayed')).toBe('true');
    expect(reordered.body).toEqual(answers[0]!.body);
    const other = await batch(ops.slice(1), { idem: 'retry-me' });
    expect(other.status).toBe(409);
    expect(other.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
    // Keys belong to the API key that sent them.
    const elsewhere = await batch([{ op: 'create', handle: '88.118.72/I-0', values: [url('x')] }], { key: otherKey, idem: 'retry-me' });
    expect(elsewhere.status).toBe(200);
    expect(elsewhere.headers.get('idempotency-replayed')).toBeNull();
  });

  it('settles concurrent batches and single writes over the same new handles: every upsert applied once', async () => {
    const handles = Array.from({ length: 50 }, (_, i) => `88.118.71/RACE-${i}`);
    const upserts = (tag: string): Op[] => handles.map((handle) => ({ op: 'upsert', handle, values: [url(tag)] }));
    const singles = handles.slice(0, 10).map((h) => call(node.url, 'PUT', `/api/handles/${h}`, { key, body: { values: [url('single')] } }));
    const answers = await Promise.all([batch(upserts('a')), batch(upserts('b')), batch(upserts('c')), ...singles]);
    for (const a of answers) expect(a.status, a.text).toBe(200);
    const written = await rows('88.118.71', 'RACE-%');
    // Each handle saw 3 batch upserts, and the first ten one PUT more: the version counts them.
    for (const [suffix, version] of written) expect(version).toBe(Number(String(suffix).slice(5)) < 10 ? 4 : 3);
  });

  it('counts every item once in the statistics, whatever the mix of operations', async () => {
    const before = await deltas('88.118.71');
    await batch([
      { op: 'create', handle: '88.118.71/S-1', values: [url('1')] },
      { op: 'create', handle: '88.118.71/S-2', values: [url('2')] },
      { op: 'create', handle: '88.118.71/S-3', values: [url('3')] },
    ]);
    await batch([
      { op: 'update', handle: '88.118.71/S-1', values: [url('1b')] },
      { op: 'delete', handle: '88.118.71/S-2' },
      { op: 'create', handle: '88.118.71/S-3', values: [url('dup')] },
    ]);
    const after = await deltas('88.118.71');
    expect([after.c - before.c, after.u - before.u, after.d - before.d]).toEqual([3, 1, 1]);
  });

  it('refuses anonymous and auditor callers, and requests that are not batches', async () => {
    const anonymous = await call(node.url, 'POST', '/api/handles/batch', { body: { operations: [{ op: 'delete', handle: '88.118.71/X' }] } });
    expect(anonymous.status).toBe(401);
    const auditor = await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } });
    const asAuditor = await batch([{ op: 'delete', handle: '88.118.71/X' }], { key: auditor.body.key });
    expect(asAuditor.status).toBe(403);
    expect((await batch([])).status).toBe(400);
    const tooMany = await batch(Array.from({ length: 10_001 }, (_, i) => ({ op: 'delete', handle: `88.118.71/T-${i}` })));
    expect(tooMany.status).toBe(400);
    const extra = await call(node.url, 'POST', '/api/handles/batch', { key, body: { operations: [{ op: 'delete', handle: '88.118.71/X' }], extra: 1 } });
    expect(extra.status).toBe(400);
    const badKey = await batch([{ op: 'delete', handle: '88.118.71/X' }], { idem: 'has space' });
    expect(badKey.status).toBe(400);
  });

  it('writes 10,000 operations in one request', async () => {
    const ops: Op[] = Array.from({ length: 10_000 }, (_, i) => ({ op: 'create', handle: `88.118.71/BIG-${i}`, values: [url(`https://example.com/${i}`)] }));
    const r = await batch(ops);
    expect(r.status).toBe(200);
    expect(r.body.counts.created).toBe(10_000);
    const { rows: count } = await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE prefix = '88.118.71' AND suffix LIKE 'BIG-%'");
    expect(count[0].n).toBe(10_000);
    expect((await resolve('88.118.71/BIG-9999')).body.values[0].data.value).toBe('https://example.com/9999');
  });
});
