/**
 * A node upgraded from migration 0006, whose audit entries were sealed the old way (seq, prev_hash,
 * hash written into audit_log), keeps a chain that verifies, old entries included, and goes on
 * sealing new ones into audit_seals.
 */
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainHash, GENESIS, type StoredEntry } from '../../src/audit/entry.js';
import { MIGRATIONS_DIR, runMigrations } from '../../src/infra/migrations.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

let db: TestDatabase;
let sql: pg.Pool;
let node: TestNode | undefined;
let oldDir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  oldDir = await mkdtemp(path.join(os.tmpdir(), 'snode-migrations-0006-'));
  for (const file of await readdir(MIGRATIONS_DIR)) {
    if (Number(file.slice(0, 4)) <= 6) await cp(path.join(MIGRATIONS_DIR, file), path.join(oldDir, file));
  }
});

afterAll(async () => {
  await node?.close();
  await sql?.end();
  await db?.drop();
  await rm(oldDir, { recursive: true, force: true });
});

/** What the 0006 sealer did: chain unsealed entries in id order by updating them, and record the head. */
async function sealTheOldWay(): Promise<void> {
  const head = (await sql.query('SELECT seq::text AS seq, hash FROM audit_chain_head')).rows[0] as { seq: string; hash: Buffer } | undefined;
  let seq = BigInt(head?.seq ?? '0');
  let previous = head?.hash ?? GENESIS;
  const { rows } = await sql.query(`SELECT id::text AS id, (extract(epoch FROM at) * 1000000)::bigint::text AS at_micros, actor_key, actor_role, action,
    target, request_id, client_ip, before_digest, after_digest, detail::text AS detail FROM audit_log WHERE seq IS NULL ORDER BY id`);
  for (const r of rows) {
    const entry: StoredEntry = {
      id: r.id, atMicros: r.at_micros, actorKey: r.actor_key, actorRole: r.actor_role, action: r.action, target: r.target,
      requestId: r.request_id, clientIp: r.client_ip, beforeDigest: r.before_digest, afterDigest: r.after_digest, detail: r.detail,
    };
    seq += 1n;
    const hash = chainHash(previous, seq.toString(), entry);
    await sql.query('UPDATE audit_log SET seq = $2, prev_hash = $3, hash = $4 WHERE id = $1', [r.id, seq.toString(), previous, hash]);
    previous = hash;
  }
  await sql.query(
    `INSERT INTO audit_chain_head (singleton, seq, hash) VALUES (true, $1, $2)
     ON CONFLICT (singleton) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash`,
    [seq.toString(), previous],
  );
}

const entry = (action: string, target: string, detail: unknown = null) =>
  sql.query(
    `INSERT INTO audit_log (actor_key, actor_role, action, target, request_id, client_ip, before_digest, after_digest, detail)
     VALUES ('cli', 'system', $1, $2::text, 'req-old', '10.0.0.1', NULL, encode(sha256(convert_to($2::text, 'UTF8')), 'hex'), $3)`,
    [action, target, detail === null ? null : JSON.stringify(detail)],
  );

describe('upgrading an audit log sealed by 0006', () => {
  it('keeps old entries verifiable, seals the ones left unsealed, and goes on with new ones', async () => {
    await runMigrations(sql, oldDir);
    await entry('enterprise.create', 'old-1', { uscc: '91320115MA1WXY7Q4L' });
    await entry('prefix.allocate', '88.118.6', { enterpriseId: 'e', nested: { b: 1, a: [1, 2] } });
    await entry('key.create', 'old-3');
    await sealTheOldWay();
    await entry('key.revoke', 'old-3'); // committed, not yet sealed when the node stops
    await entry('identifier.create', '88.118.6/OLD');
    const before = (await sql.query('SELECT id, seq, prev_hash, hash FROM audit_log ORDER BY id')).rows;
    expect(before.map((r) => r.seq)).toEqual(['1', '2', '3', null, null]);

    const applied = await runMigrations(sql);
    expect(applied.applied).toContain('0008_audit_seals');
    // Nothing stored is lost: the old chain fields are still there, and copied into the chain.
    expect((await sql.query('SELECT id, seq, prev_hash, hash FROM audit_log ORDER BY id')).rows).toEqual(before);
    const seals = (await sql.query('SELECT seq::text AS seq, entry_id::text AS id, hash FROM audit_seals ORDER BY seq')).rows;
    expect(seals).toEqual(before.slice(0, 3).map((r) => ({ seq: r.seq, id: r.id, hash: r.hash })));

    node = await startTestNode({ databaseUrl: db.url, redis: false, env: { AUDIT_SEAL_MS: '3600000' } });
    const verify = async () => (await call(node!.url, 'GET', '/api/audit/verify', { key: node!.adminKey })).body;
    const first = await verify();
    // The two unsealed old entries and the first admin key's entry joined the chain after the old ones.
    expect(first).toMatchObject({ ok: true, unsealed: 0, checked: 6, head: { seq: '6' } });
    const chained = (await sql.query('SELECT s.seq::int AS seq, a.target FROM audit_seals s JOIN audit_log a ON a.id = s.entry_id ORDER BY s.seq')).rows;
    expect(chained.slice(0, 5).map((r) => r.target)).toEqual(['old-1', '88.118.6', 'old-3', 'old-3', '88.118.6/OLD']);

    // A changed old entry is named, as before the upgrade.
    await sql.query("UPDATE audit_log SET target = '88.118.66' WHERE seq = 2");
    expect(await verify()).toMatchObject({ ok: false, firstMismatch: { seq: '2', id: before[1].id } });
    await sql.query("UPDATE audit_log SET target = '88.118.6' WHERE seq = 2");

    const ent = await call(node.url, 'POST', '/api/admin/enterprises', { key: node.adminKey, body: { name: '升级企业', uscc: '91320115MA1WXY7Q4L' } });
    expect(ent.status).toBe(201);
    expect((await call(node.url, 'PUT', '/api/handles/88.118.6/NEW', { key: node.adminKey, body: { values: [url('https://u.example')] } })).status).toBe(200);
    expect(await verify()).toMatchObject({ ok: true, unsealed: 0, checked: 8 });
  });
});
