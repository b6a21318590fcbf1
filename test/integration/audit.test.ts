/** The audit log: entries in the write's transaction, a hash chain that names the first tampered entry. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { digestOf } from '../../src/audit/entry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { runCli } from '../helpers/process.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let ent: { enterpriseId: string; key: string };
let auditorKey: string;
const redisPrefix = newRedisPrefix();
const SECRET = 'test-secret-test-secret-test-secret-0123';

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  // A long seal interval: the tests seal when they mean to.
  node = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix, env: { AUDIT_SEAL_MS: '3600000' } });
  ent = await onboard(node.url, node.adminKey, makeUscc(501), '88.118.5', '审计企业');
  auditorKey = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'auditor' } })).body.key;
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
  await clearRedisPrefix(redisPrefix);
});

const audit = (query = '', key = auditorKey) => call(node.url, 'GET', `/api/audit${query}`, { key });
const verify = async () => (await audit('/verify')).body;

describe('what is recorded', () => {
  it('records create, update and delete with actor, request id, client IP and digests of before and after', async () => {
    const h = '88.118.5/AUD-1';
    const headers = { 'x-request-id': 'req-audit-create' };
    expect((await call(node.url, 'PUT', `/api/handles/${h}`, { key: ent.key, body: { values: [url('https://a.example/1')] }, headers })).status).toBe(200);
    expect((await call(node.url, 'PUT', `/api/handles/${h}`, { key: ent.key, body: { values: [url('https://a.example/2')] } })).status).toBe(200);
    expect((await call(node.url, 'DELETE', `/api/handles/${h}`, { key: ent.key })).status).toBe(200);
    const items = (await audit(`?target=${encodeURIComponent(h)}`)).body.items.reverse();
    expect(items.map((e: { action: string }) => e.action)).toEqual(['identifier.create', 'identifier.update', 'identifier.delete']);
    const keyId = (await call(node.url, 'GET', `/api/admin/keys?enterpriseId=${ent.enterpriseId}`, { key: node.adminKey })).body.items[0].id;
    for (const e of items) {
      expect(e).toMatchObject({ actorKey: keyId, actorRole: 'enterprise', clientIp: '127.0.0.1', target: h });
    }
    expect(items[0].requestId).toBe('req-audit-create');
    expect(items[0].beforeDigest).toBeNull();
    expect(items[0].afterDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(items[1].beforeDigest).toBe(items[0].afterDigest); // the state after one change is the state before the next
    expect(items[2].beforeDigest).toBe(items[1].afterDigest);
    expect(items[2].afterDigest).toBeNull();
    // The digest is of the stored record, so anyone holding the record can check it.
    const stored = (await call(node.url, 'GET', '/api/handles/88.118.5/AUD-2')).status; // not there
    expect(stored).toBe(404);
    expect(items[0].afterDigest).not.toBe(digestOf({ version: 1, values: [] }));
  });

  it('records no change for a refused write, and a write and its entry commit together', async () => {
    const count = "SELECT count(*)::int AS n FROM audit_log WHERE action LIKE 'identifier.%'";
    const before = (await sql.query(count)).rows[0].n;
    await call(node.url, 'PUT', '/api/handles/88.118.5/AUD-X?overwrite=false', { key: ent.key, body: { values: [url('x')] } });
    expect((await call(node.url, 'PUT', '/api/handles/88.118.5/AUD-X?overwrite=false', { key: ent.key, body: { values: [url('y')] } })).status).toBe(409);
    expect((await call(node.url, 'PUT', '/api/handles/88.118.99/AUD-X', { key: ent.key, body: { values: [url('y')] } })).status).toBe(403);
    expect((await call(node.url, 'PUT', '/api/handles/88.118.5/AUD-Y', { key: ent.key, body: { values: [{ index: 'x' }] } })).status).toBe(400);
    expect((await sql.query(count)).rows[0].n).toBe(before + 1);
  });

  it('records key changes and admin actions with the admin as actor', async () => {
    const created = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'enterprise', enterpriseId: ent.enterpriseId, label: 'l2' } })).body;
    await call(node.url, 'DELETE', `/api/admin/keys/${created.id}`, { key: node.adminKey });
    const items = (await audit(`?target=${created.id}`)).body.items.reverse();
    expect(items.map((e: { action: string }) => e.action)).toEqual(['key.create', 'key.revoke']);
    expect(items[0].actorRole).toBe('admin');
    expect(JSON.stringify(items)).not.toContain(created.key); // the key itself is never in the log
  });

  it('filters by actor and time range, newest first, and pages with before=', async () => {
    const keyId = (await call(node.url, 'GET', `/api/admin/keys?enterpriseId=${ent.enterpriseId}`, { key: node.adminKey })).body.items[0].id;
    const all = (await audit(`?actor=${keyId}`)).body.items;
    expect(all.length).toBeGreaterThanOrEqual(4);
    expect(all.every((e: { actorKey: string }) => e.actorKey === keyId)).toBe(true);
    const ids = all.map((e: { id: string }) => Number(e.id));
    expect(ids).toEqual([...ids].sort((x, y) => y - x));
    const page2 = (await audit(`?actor=${keyId}&limit=2&before=${all[1].id}`)).body.items;
    expect(page2.map((e: { id: string }) => e.id)).toEqual([all[2].id, all[3].id]);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await audit(`?actor=${keyId}&from=${encodeURIComponent(future)}`)).body.items).toEqual([]);
    expect((await audit(`?actor=${keyId}&to=${encodeURIComponent(future)}`)).body.items.length).toBe(all.length);
    expect((await audit('?from=yesterday')).status).toBe(400);
    // A date, or a date-time with its zone; "1" (the year 2001 to Date) and a zoneless time are refused.
    const today = new Date().toISOString().slice(0, 10);
    expect((await audit(`?actor=${keyId}&to=${today}`)).status).toBe(200);
    expect((await audit(`?actor=${keyId}&from=${encodeURIComponent(future.replace('Z', '+00:00'))}`)).body.items).toEqual([]);
    for (const bad of ['1', `${today}T08:00:00`, '2026-13-45']) {
      const refused = await audit(`?from=${encodeURIComponent(bad)}`);
      expect(refused.status, bad).toBe(400);
      expect(refused.body.error.code).toBe('INVALID_TIME');
    }
    expect((await audit('?bogus=1')).status).toBe(400);
  });

  it('is read by auditors and admins only', async () => {
    expect((await audit('', node.adminKey)).status).toBe(200);
    expect((await audit('', ent.key)).status).toBe(403);
    expect((await call(node.url, 'GET', '/api/audit')).status).toBe(401);
    expect((await call(node.url, 'GET', '/api/audit/verify', { key: ent.key })).status).toBe(403);
  });
});

/** Puts back rows set aside in audit_saved, byte for byte (microsecond times included). */
async function restoreSaved(table = 'audit_log'): Promise<void> {
  await sql.query(`INSERT INTO ${table} SELECT * FROM audit_saved`);
  await sql.query('DROP TABLE audit_saved');
}

/** The entry sealed at a position. */
const sealedAt = async (seq: number) =>
  (await sql.query('SELECT a.id::text AS id, a.target FROM audit_seals s JOIN audit_log a ON a.id = s.entry_id WHERE s.seq = $1', [seq])).rows[0];

describe('the hash chain', () => {
  it('chains concurrent writes without gaps, writing each entry once', async () => {
    await Promise.all(Array.from({ length: 40 }, (_, i) =>
      call(node.url, 'PUT', `/api/handles/88.118.5/CONC-${i}`, { key: ent.key, body: { values: [url(`https://a.example/${i}`)] } })));
    const result = await verify();
    expect(result).toMatchObject({ ok: true, unsealed: 0 });
    const { rows } = await sql.query(`SELECT min(seq)::int AS lo, max(seq)::int AS hi, count(*)::int AS n, count(DISTINCT entry_id)::int AS entries,
      (SELECT count(*)::int FROM audit_log) AS logged FROM audit_seals`);
    expect(rows[0]).toMatchObject({ lo: 1, hi: rows[0].n, entries: rows[0].n, logged: rows[0].n });
    expect(result.checked).toBe(rows[0].n);
    expect(result.head.seq).toBe(String(rows[0].n));
    // Sealing appends seals; the entries themselves are never updated after their insert.
    expect((await sql.query("SELECT n_tup_upd::int AS n FROM pg_stat_user_tables WHERE relname = 'audit_log'")).rows[0].n).toBe(0);
  });

  it('seals an entry whose transaction was still open during a round, once it commits', async () => {
    const open = new pg.Client({ connectionString: db.url });
    await open.connect();
    try {
      await open.query('BEGIN');
      await open.query("INSERT INTO audit_log (actor_key, actor_role, action, target) VALUES ('cli', 'system', 'test.slow', 'slow-transaction')");
      // Later writes commit and are sealed while the first transaction is still open.
      await call(node.url, 'PUT', '/api/handles/88.118.5/AFTER-OPEN', { key: ent.key, body: { values: [url('https://a.example/after')] } });
      expect(await verify()).toMatchObject({ ok: true, unsealed: 0 });
      const sealedLater = (await sql.query("SELECT s.seq::int AS seq FROM audit_seals s JOIN audit_log a ON a.id = s.entry_id WHERE a.target = '88.118.5/AFTER-OPEN'")).rows[0].seq;
      await open.query('COMMIT');
      const result = await verify();
      expect(result).toMatchObject({ ok: true, unsealed: 0 });
      const slow = (await sql.query("SELECT a.id::int AS id, s.seq::int AS seq FROM audit_log a JOIN audit_seals s ON s.entry_id = a.id WHERE a.target = 'slow-transaction'")).rows[0];
      // Its id is older than the write it waited behind, its place in the chain later.
      expect(slow.seq).toBeGreaterThan(sealedLater);
      expect(result.head.seq).toBe(String(slow.seq));
    } finally {
      await open.end();
    }
  });

  it('verifies what committed before it was asked, even while a sealing round that began earlier is still running', async () => {
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await sql.query("INSERT INTO audit_log (actor_key, actor_role, action, target) VALUES ('cli', 'system', 'test.first', 'round-one')");
      // A round takes its snapshot, finds that entry, and waits to append its seal.
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE audit_seals IN EXCLUSIVE MODE');
      const first = verify();
      await vi.waitFor(async () => {
        const { rows } = await sql.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO audit_seals%'");
        expect(rows[0].n).toBe(1);
      }, { timeout: 10_000 });
      // Committed after that round's snapshot, before this verify was asked.
      await sql.query("INSERT INTO audit_log (actor_key, actor_role, action, target) VALUES ('cli', 'system', 'test.second', 'round-two')");
      const second = verify();
      await blocker.query('COMMIT');
      expect(await first).toMatchObject({ ok: true });
      expect(await second).toMatchObject({ ok: true, unsealed: 0 });
      expect((await sql.query("SELECT count(*)::int AS n FROM audit_seals s JOIN audit_log a ON a.id = s.entry_id WHERE a.target IN ('round-one', 'round-two')")).rows[0].n).toBe(2);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
    }
  });

  it('walks sealed entries by chain position with afterSeq=, so an entry that committed late is not skipped', async () => {
    const walk = async (after: string): Promise<Array<{ id: string; seq: string; target: string }>> => {
      const seen: Array<{ id: string; seq: string; target: string }> = [];
      for (let cursor = after; ;) {
        const page = (await audit(`?afterSeq=${cursor}&limit=7`)).body.items;
        if (page.length === 0) return seen;
        seen.push(...page);
        cursor = page[page.length - 1].seq;
      }
    };
    const start = (await verify()).head.seq;
    const open = new pg.Client({ connectionString: db.url });
    await open.connect();
    try {
      await open.query('BEGIN');
      await open.query("INSERT INTO audit_log (actor_key, actor_role, action, target) VALUES ('cli', 'system', 'test.late', 'late-walk')");
      await call(node.url, 'PUT', '/api/handles/88.118.5/WALK-1', { key: ent.key, body: { values: [url('https://a.example/w1')] } });
      await verify();
      const first = await walk(start);
      expect(first.map((e) => e.target)).toEqual(['88.118.5/WALK-1']);
      await open.query('COMMIT');
      await call(node.url, 'PUT', '/api/handles/88.118.5/WALK-2', { key: ent.key, body: { values: [url('https://a.example/w2')] } });
      await verify();
      const rest = await walk(first[first.length - 1]!.seq);
      // The late entry has the smaller id, yet comes after what the first walk read.
      expect(rest.map((e) => e.target)).toEqual(['late-walk', '88.118.5/WALK-2']);
      expect(Number(rest[0]!.id)).toBeLessThan(Number(first[0]!.id));
      expect(rest.map((e) => Number(e.seq))).toEqual([Number(first[0]!.seq) + 1, Number(first[0]!.seq) + 2]);
    } finally {
      await open.end();
    }
    expect((await audit('?afterSeq=0&before=5')).body.error.code).toBe('INVALID_QUERY');
  });

  it('names a changed entry', async () => {
    const row = await sealedAt(5);
    await sql.query("UPDATE audit_log SET target = '88.118.5/FORGED' WHERE id = $1", [row.id]);
    try {
      expect(await verify()).toMatchObject({ ok: false, firstMismatch: { seq: '5', id: row.id } });
    } finally {
      await sql.query('UPDATE audit_log SET target = $1 WHERE id = $2', [row.target, row.id]);
    }
    expect((await verify()).ok).toBe(true);
  });

  it('names a changed seal', async () => {
    const { hash } = (await sql.query('SELECT hash FROM audit_seals WHERE seq = 6')).rows[0];
    await sql.query("UPDATE audit_seals SET hash = sha256('forged') WHERE seq = 6");
    try {
      expect(await verify()).toMatchObject({ ok: false, firstMismatch: { seq: '6', id: (await sealedAt(6)).id } });
    } finally {
      await sql.query('UPDATE audit_seals SET hash = $1 WHERE seq = 6', [hash]);
    }
    expect((await verify()).ok).toBe(true);
  });

  it('names the place of a deleted entry', async () => {
    const row = await sealedAt(7);
    await sql.query('CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE id = $1', [row.id]);
    await sql.query('DELETE FROM audit_log WHERE id = $1', [row.id]);
    try {
      const result = await verify();
      expect(result).toMatchObject({ ok: false, firstMismatch: { seq: '7', id: row.id } });
      expect(result.firstMismatch.reason).toMatch(/missing/);
    } finally {
      await restoreSaved();
    }
    expect((await verify()).ok).toBe(true);
  });

  it('names the place of a deleted seal, and the entry it leaves outside the chain', async () => {
    await sql.query('CREATE TABLE audit_saved AS SELECT * FROM audit_seals WHERE seq = 8');
    await sql.query('DELETE FROM audit_seals WHERE seq = 8');
    try {
      const result = await verify();
      expect(result).toMatchObject({ ok: false, firstMismatch: { seq: '8' } });
      expect(result.firstMismatch.reason).toMatch(/missing/);
    } finally {
      await restoreSaved('audit_seals');
    }
    expect((await verify()).ok).toBe(true);
  });

  it('names reordered entries', async () => {
    const [third, fourth] = [await sealedAt(3), await sealedAt(4)];
    const swap = async (a: string, b: string) => {
      await sql.query('UPDATE audit_seals SET entry_id = -1 WHERE entry_id = $1', [a]);
      await sql.query('UPDATE audit_seals SET entry_id = $1 WHERE entry_id = $2', [a, b]);
      await sql.query('UPDATE audit_seals SET entry_id = $1 WHERE entry_id = -1', [b]);
    };
    await swap(third.id, fourth.id);
    try {
      expect(await verify()).toMatchObject({ ok: false, firstMismatch: { seq: '3', id: fourth.id } });
    } finally {
      await swap(third.id, fourth.id);
    }
    expect((await verify()).ok).toBe(true);
  });

  it('names an entry added behind the node\'s back with an old transaction id', async () => {
    const { rows } = await sql.query(
      "INSERT INTO audit_log (actor_key, actor_role, action, target, xid) VALUES ('cli', 'system', 'key.create', 'forged', '3') RETURNING id::text AS id",
    );
    try {
      expect(await verify()).toMatchObject({ ok: false, firstMismatch: { seq: null, id: rows[0].id } });
    } finally {
      await sql.query('DELETE FROM audit_log WHERE id = $1', [rows[0].id]);
    }
    expect((await verify()).ok).toBe(true);
  });

  it('notices the newest entries removed', async () => {
    await sql.query('CREATE TABLE audit_saved AS SELECT * FROM audit_seals WHERE seq = (SELECT max(seq) FROM audit_seals)');
    await sql.query('DELETE FROM audit_seals WHERE seq = (SELECT seq FROM audit_saved)');
    try {
      const result = await verify();
      expect(result.ok).toBe(false);
      expect(result.firstMismatch.reason).toMatch(/head/);
    } finally {
      await restoreSaved('audit_seals');
    }
    expect((await verify()).ok).toBe(true);
  });
});

describe('anchoring the head outside the database', () => {
  it('exports the head, and verify through it notices a tail cut with the head rewritten to match', async () => {
    await call(node.url, 'PUT', '/api/handles/88.118.5/ANCHORED', { key: ent.key, body: { values: [url('https://a.example/anchored')] } });
    const { head } = (await audit('/head')).body;
    expect(head).toMatchObject({ seq: expect.stringMatching(/^[1-9][0-9]*$/), hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(head.anchor).toBe(`${head.seq}:${head.hash}`);
    expect(new Date(head.at).getTime()).toBeGreaterThan(Date.now() - 600_000);
    expect((await audit(`/verify?anchor=${head.anchor}`)).body).toMatchObject({ ok: true, anchor: { seq: head.seq, ok: true } });
    const cli = await runCli(['audit', 'head'], { DATABASE_URL: db.url, API_KEY_SECRET: SECRET });
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout).head).toMatchObject({ seq: head.seq, hash: head.hash });

    // Someone with the database's rights removes the newest entries and makes the head agree:
    // the chain is consistent in itself, so only the anchor shows it.
    const kept = Number(head.seq) - 2;
    await sql.query('CREATE TABLE audit_saved AS SELECT * FROM audit_seals WHERE seq > $1', [kept]);
    await sql.query('CREATE TABLE audit_saved_entries AS SELECT a.* FROM audit_log a JOIN audit_saved s ON s.entry_id = a.id');
    const state = (await sql.query('SELECT seq, hash FROM audit_sealer')).rows[0];
    await sql.query('DELETE FROM audit_log WHERE id IN (SELECT entry_id FROM audit_saved)');
    await sql.query('DELETE FROM audit_seals WHERE seq > $1', [kept]);
    await sql.query('UPDATE audit_sealer SET seq = s.seq, hash = s.hash FROM audit_seals s WHERE s.seq = $1', [kept]);
    try {
      expect((await verify()).ok).toBe(true);
      const anchored = (await audit(`/verify?anchor=${head.anchor}`)).body;
      expect(anchored).toMatchObject({ ok: false, anchor: { ok: false }, firstMismatch: { seq: String(kept + 1) } });
      expect(anchored.firstMismatch.reason).toMatch(/anchored head is entry/);
      const viaCli = await runCli(['audit', 'verify', '--anchor', head.anchor], { DATABASE_URL: db.url, API_KEY_SECRET: SECRET });
      expect(viaCli.code).toBe(1);
      expect(JSON.parse(viaCli.stdout)).toMatchObject({ ok: false, anchor: { ok: false } });
    } finally {
      await sql.query('INSERT INTO audit_log SELECT * FROM audit_saved_entries');
      await sql.query('DROP TABLE audit_saved_entries');
      await restoreSaved('audit_seals');
      await sql.query('UPDATE audit_sealer SET seq = $1, hash = $2', [state.seq, state.hash]);
    }
    expect((await audit(`/verify?anchor=${head.anchor}`)).body).toMatchObject({ ok: true, anchor: { ok: true } });
  });

  it('notices a chain rewritten up to the anchor', async () => {
    const { head } = (await audit('/head')).body;
    const forged = `${head.seq}:${'0'.repeat(64)}`;
    expect((await audit(`/verify?anchor=${forged}`)).body).toMatchObject({ ok: false, anchor: { ok: false }, firstMismatch: { seq: head.seq } });
  });

  it('refuses a malformed anchor', async () => {
    expect((await audit('/verify?anchor=12')).status).toBe(400);
    expect((await audit(`/verify?anchor=0:${'a'.repeat(64)}`)).status).toBe(400);
    const cli = await runCli(['audit', 'verify', '--anchor', 'nonsense'], { DATABASE_URL: db.url, API_KEY_SECRET: SECRET });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/anchor/);
  });
});
