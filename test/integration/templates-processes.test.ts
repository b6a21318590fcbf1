/**
 * Templates across processes: two nodes on one database, each with its own template cache. A
 * change or first use on one clears the other's cache (Postgres NOTIFY); and a write is checked
 * against the version as committed even when no notification came (a change made behind the
 * nodes' backs) or when a template change and a first use race (row locks, tested by holding them).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let a: TestNode;
let b: TestNode;
let key: string;
let sql: pg.Pool;

const P = '88.118.63';

beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestNode({ databaseUrl: db.url, redis: false });
  b = await startTestNode({ databaseUrl: db.url, redis: false });
  ({ key } = await onboard(a.url, a.adminKey, makeUscc(6301), P));
  sql = new pg.Pool({ connectionString: db.url, max: 3 });
});

afterAll(async () => {
  await sql?.end();
  await a?.close();
  await b?.close();
  await db?.drop();
});

const str = (index: number, type: string, value: string) => ({ index, type, data: { format: 'string', value } });
const lot = (required: boolean) => ({ items: [{ name: 'lot', type: 'LOT', index: 2001, required }, { name: 'line', type: 'LINE', index: 2002 }] });
/** The items as the node stores them, for changes made straight in the database. */
const storedLot = (required: boolean) => JSON.stringify(lot(required).items.map((i) => ({ required: false, ...i, enabled: true })));
const putTemplate = (node: TestNode, version: string, body: unknown) => call(node.url, 'PUT', `/api/templates/${P}/${version}`, { key, body });
const putRecord = (node: TestNode, suffix: string, values: unknown[]) => call(node.url, 'PUT', `/api/handles/${P}/${suffix}`, { key, body: { values } });
const follows = (version: string) => str(1001, 'TEMPLATE', version);
const cacheOf = (node: TestNode, version: string) => node.node.app.templates.peek(P, version);
/** Until the node's cache no longer holds the version (a notification arrived). */
const dropped = (node: TestNode, version: string) => vi.waitFor(() => expect(cacheOf(node, version)).toBeUndefined(), { timeout: 30_000, interval: 20 });
/**
 * A template change both nodes have heard of (each dropped its cache on the notification) before
 * the test goes on: a notification arriving later would drop what the next step caches.
 */
async function putTemplateHeard(node: TestNode, version: string, body: unknown) {
  const before = [a, b].map((n) => n.node.app.templates.clears);
  const answer = await putTemplate(node, version, body);
  await vi.waitFor(() => [a, b].forEach((n, i) => expect(n.node.app.templates.clears).toBeGreaterThan(before[i]!)), { timeout: 30_000, interval: 20 });
  return answer;
}
/** Until some backend of this database waits for a row lock. */
const someoneWaits = () =>
  vi.waitFor(async () => {
    const r = await sql.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, [db.name]);
    expect(r.rows[0].n).toBeGreaterThan(0);
  }, { timeout: 30_000, interval: 20 });

describe('template caches across processes', () => {
  it('a version created on one node is seen at once by a node that had found it missing', async () => {
    const before = await putRecord(a, 'LATE-1', [follows('late')]);
    expect(before.body.code).toBe('TEMPLATE_NOT_FOUND');
    expect(cacheOf(a, 'late')).toBe('missing');
    expect((await putTemplate(b, 'late', lot(false))).status).toBe(201);
    await dropped(a, 'late');
    expect((await putRecord(a, 'LATE-1', [follows('late')])).status).toBe(200);
  });

  it('a version changed on one node is what another node checks against next', async () => {
    await putTemplateHeard(b, 'draft', lot(true));
    expect((await putRecord(a, 'D-1', [follows('draft')])).body.code).toBe('TEMPLATE_VIOLATION');
    expect(cacheOf(a, 'draft')).toBe('not in use');
    expect((await putTemplate(b, 'draft', lot(false))).status).toBe(200);
    await dropped(a, 'draft');
    const statements = a.node.app.templates.statements;
    expect((await putRecord(a, 'D-1', [follows('draft')])).status).toBe(200);
    // Reloaded once, then locked and marked used: no retry against a stale copy.
    expect(a.node.app.templates.statements - statements).toBe(3);
  });

  it('a first use on one node tells the others, which stop locking the version', async () => {
    await putTemplateHeard(a, 'shared', lot(true));
    expect((await putRecord(b, 'SH-0', [follows('shared')])).body.code).toBe('TEMPLATE_VIOLATION');
    expect(cacheOf(b, 'shared')).toBe('not in use');
    expect((await putRecord(a, 'SH-1', [follows('shared'), str(2001, 'LOT', 'L1')])).status).toBe(200);
    await dropped(b, 'shared');
    const statements = b.node.app.templates.statements;
    expect((await putRecord(b, 'SH-2', [follows('shared'), str(2001, 'LOT', 'L2')])).status).toBe(200);
    expect(b.node.app.templates.statements - statements).toBe(1);
    expect(cacheOf(b, 'shared')).toBe('in use');
  });

  it('checks against the committed version even when no notification came', async () => {
    await putTemplateHeard(a, 'quiet', lot(false));
    expect((await putRecord(a, 'Q-0', [follows('quiet'), str(2500, 'X', 'x')])).body.code).toBe('TEMPLATE_VIOLATION');
    expect(cacheOf(a, 'quiet')).toBe('not in use');
    // Changed behind the nodes' backs: lot becomes required, and nobody is told.
    await sql.query(`UPDATE templates SET items = $3, revision = revision + 1 WHERE prefix = $1 AND version = $2`, [P, 'quiet', storedLot(true)]);
    expect(cacheOf(a, 'quiet')).toBe('not in use');
    const r = await putRecord(a, 'Q-1', [follows('quiet')]);
    expect(r.status).toBe(400);
    expect(r.body.details.violations).toEqual([expect.objectContaining({ index: 2001, item: 'lot', rule: 'required' })]);
    expect((await putRecord(a, 'Q-1', [follows('quiet'), str(2001, 'LOT', 'L')])).status).toBe(200);
  });

  it('a write racing a template change is checked against the change once it commits', async () => {
    await putTemplateHeard(a, 'race', lot(false));
    expect((await putRecord(a, 'R-0', [follows('race'), str(2500, 'X', 'x')])).status).toBe(400); // caches "not in use"
    const change = await sql.connect();
    try {
      // A template change in flight: its row lock held, the new definition not yet committed.
      await change.query('BEGIN');
      await change.query('SELECT 1 FROM templates WHERE prefix = $1 AND version = $2 FOR UPDATE', [P, 'race']);
      const write = putRecord(a, 'R-1', [follows('race')]); // valid under the version as it was
      await someoneWaits();
      await change.query(`UPDATE templates SET items = $3, revision = revision + 1 WHERE prefix = $1 AND version = $2`, [P, 'race', storedLot(true)]);
      await change.query('COMMIT');
      const r = await write;
      expect(r.status).toBe(400);
      expect(r.body.details.violations[0]).toMatchObject({ index: 2001, rule: 'required' });
    } finally {
      change.release();
    }
    expect((await call(a.url, 'GET', `/api/templates/${P}/race`)).body.inUse).toBe(false);
  });

  it('a template change racing a first use waits for it, then is refused', async () => {
    await putTemplate(a, 'first', lot(false));
    const use = await sql.connect();
    let change: Promise<{ status: number; body: { error: { code: string } } }> | undefined;
    try {
      // A record write in flight that names the version: it has locked the row and marked it used.
      await use.query('BEGIN');
      await use.query('SELECT 1 FROM templates WHERE prefix = $1 AND version = $2 FOR UPDATE', [P, 'first']);
      await use.query('UPDATE templates SET in_use = true WHERE prefix = $1 AND version = $2', [P, 'first']);
      change = putTemplate(b, 'first', lot(true));
      await someoneWaits();
      await use.query('COMMIT');
    } finally {
      use.release();
    }
    const r = await change!;
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('TEMPLATE_IN_USE');
  });
});
