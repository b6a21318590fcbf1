/**
 * The README's start command on a fresh folder: no DATABASE_URL, no REDIS_URL. The node starts a
 * real embedded Postgres, registers and resolves over HTTP, stops it on SIGTERM, and finds the
 * record again after a restart.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, onboard, url } from '../helpers/http.js';
import { killEmbeddedPostgres, ROOT, runCli, startProcess, type NodeProcess } from '../helpers/process.js';
import { makeUscc } from '../helpers/uscc.js';

let dataDir: string;
let running: NodeProcess | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'snode-e2e-'));
});

afterAll(async () => {
  running?.kill();
  killEmbeddedPostgres(dataDir);
  await rm(dataDir, { recursive: true, force: true });
});

/** A node process whose output is collected, with a wait for a line of it. */
function watched(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const until = async (text: string, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!output.includes(text)) {
      if (Date.now() > deadline) throw new Error(`never saw ${JSON.stringify(text)}:\n${output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, exited, until, output: () => output };
}

describe('embedded defaults (npm start)', () => {
  it('boots, registers, resolves, stops cleanly and keeps the record across a restart', async () => {
    running = await startProcess({ DATA_DIR: dataDir, PORT: '0' });
    const messages = running.logs.map((l) => String(l.msg));
    expect(messages).toContain('postgres: embedded (no DATABASE_URL)');
    expect(messages).toContain('cache: in-process (no REDIS_URL)');
    expect(running.logs.find((l) => String(l.msg).includes('first admin key'))?.file).toBe(path.join(dataDir, 'admin.key'));

    const adminKey = (await readFile(path.join(dataDir, 'admin.key'), 'utf8')).trim();
    expect((await stat(path.join(dataDir, 'admin.key'))).mode & 0o777).toBe(0o600);
    expect(running.output()).not.toContain(adminKey);
    const { key } = await onboard(running.url, adminKey, makeUscc(601), '88.118.8', '南京示例制造有限公司');
    const put = await call(running.url, 'PUT', '/api/handles/88.118.8/PART-0001', { key, body: { values: [url('https://example.com/parts/0001')] } });
    expect(put.status).toBe(200);
    const got = await call(running.url, 'GET', '/api/handles/88.118.8/PART-0001');
    expect(got.body.values[0].data.value).toBe('https://example.com/parts/0001');

    // The admin CLI works while the node runs, on the same embedded cluster.
    const listed = await runCli(['admin', 'enterprise', 'list'], { DATA_DIR: dataDir });
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)[0]).toMatchObject({ name: '南京示例制造有限公司', prefixes: ['88.118.8'] });
    expect((await call(running.url, 'GET', '/readyz')).status).toBe(200);

    expect(await running.stop('SIGTERM')).toBe(0);
    expect(running.logs.map((l) => l.msg)).toContain('stopped');
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);

    running = await startProcess({ DATA_DIR: dataDir, PORT: '0' });
    expect(running.logs.some((l) => String(l.msg).includes('first admin key'))).toBe(false);
    const again = await call(running.url, 'GET', '/api/handles/88.118.8/PART-0001');
    expect(again.status).toBe(200);
    expect(again.body.values[0].data.value).toBe('https://example.com/parts/0001');
    expect(await running.stop('SIGINT')).toBe(0);
    running = undefined;
  });

  it('shuts down cleanly on a SIGTERM that arrives while the embedded Postgres is still being created', async () => {
    const fresh = await mkdtemp(path.join(os.tmpdir(), 'snode-early-'));
    try {
      const serve = watched(['dist/main.js', 'serve'], { DATA_DIR: fresh, PORT: '0', LOG_LEVEL: 'info', DATABASE_URL: '', REDIS_URL: '' });
      await serve.until('creating a new cluster');
      expect(serve.output()).not.toContain('snode listening');
      serve.child.kill('SIGTERM');
      expect(await serve.exited, serve.output().slice(-3000)).toBe(0);
      expect(serve.output()).toContain('"msg":"stopped"');
      // The cluster it had started is stopped, not left behind.
      expect(existsSync(path.join(fresh, 'pg', 'postmaster.pid'))).toBe(false);
    } finally {
      killEmbeddedPostgres(fresh);
      await rm(fresh, { recursive: true, force: true });
    }
  });

  it('hands the cluster over to a serve still using it when the process that started it stops', async () => {
    const shared = await mkdtemp(path.join(os.tmpdir(), 'snode-shared-'));
    let node: NodeProcess | undefined;
    try {
      // The first process (as a long `snode import` would): starts the cluster, stops it when told.
      const script = `import { startEmbeddedPostgres } from './dist/infra/embedded-postgres.js';
        import { createLogger } from './dist/infra/logger.js';
        const db = await startEmbeddedPostgres(process.env.DATA_DIR, { port: 0, log: createLogger('silent') });
        console.log('READY ' + db.mode);
        process.stdin.once('data', async () => { await db.stop(); console.log('STOPPED'); process.exit(0); });`;
      const first = watched(['--input-type=module', '-e', script], { DATA_DIR: shared });
      await first.until('READY');
      expect(first.output()).toContain('READY started');
      node = await startProcess({ DATA_DIR: shared, PORT: '0' }, [process.execPath, 'dist/main.js', 'serve']);
      expect(node.logs.some((l) => String(l.msg).includes('using the cluster another snode process runs'))).toBe(true);
      // The first process ends: the cluster stays up for the serve.
      first.child.stdin.write('stop\n');
      expect(await first.exited, first.output()).toBe(0);
      expect(existsSync(path.join(shared, 'pg', 'postmaster.pid'))).toBe(true);
      expect((await call(node.url, 'GET', '/readyz')).body).toMatchObject({ status: 'ready', postgres: 'up' });
      const adminKey = (await readFile(path.join(shared, 'admin.key'), 'utf8')).trim();
      expect((await call(node.url, 'GET', '/api/admin/keys', { key: adminKey })).status).toBe(200);
      // And the serve, now its owner, stops it.
      expect(await node.stop('SIGTERM')).toBe(0);
      node = undefined;
      expect(existsSync(path.join(shared, 'pg', 'postmaster.pid'))).toBe(false);
    } finally {
      node?.kill();
      killEmbeddedPostgres(shared);
      await rm(shared, { recursive: true, force: true });
    }
  });

  it('adopts a cluster left running by a killed node', async () => {
    const first = await startProcess({ DATA_DIR: dataDir, PORT: '0' }, [process.execPath, 'dist/main.js', 'serve']);
    await first.stop('SIGKILL');
    // The orphaned postmaster still runs; the next node reuses it and stops it on exit.
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(true);
    running = await startProcess({ DATA_DIR: dataDir, PORT: '0' });
    expect(running.logs.some((l) => String(l.msg).includes('adopting'))).toBe(true);
    expect((await call(running.url, 'GET', '/api/handles/88.118.8/PART-0001')).status).toBe(200);
    expect(await running.stop('SIGTERM')).toBe(0);
    running = undefined;
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  });
});

describe.runIf(process.getuid?.() === 0)('ownership of DATA_DIR when started as root', () => {
  // Only where an ordinary user can read this checkout (not, say, a clone under /root).
  const nobodyCanRun = spawnSync('test', ['-r', path.join(ROOT, 'dist', 'main.js')], { uid: 65534, gid: 65534 }).status === 0;

  it.runIf(nobodyCanRun)('also runs as an ordinary user', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'snode-nobody-'));
    await chown(home, 65534, 65534);
    const user = { uid: 65534, gid: 65534 };
    let node: NodeProcess | undefined;
    try {
      node = await startProcess({ DATA_DIR: path.join(home, 'data'), PORT: '0' }, [process.execPath, 'dist/main.js', 'serve'], user);
      expect((await call(node.url, 'GET', '/readyz')).body).toMatchObject({ status: 'ready', postgres: 'up' });
      const adminKey = (await readFile(path.join(home, 'data', 'admin.key'), 'utf8')).trim();
      expect((await call(node.url, 'GET', '/api/admin/keys', { key: adminKey })).status).toBe(200);
      expect(await node.stop('SIGTERM')).toBe(0);
    } finally {
      node?.kill();
      killEmbeddedPostgres(path.join(home, 'data'));
      await rm(home, { recursive: true, force: true });
    }
  });

  it('refuses, naming DATA_DIR, when the postgres user cannot reach it', async () => {
    const locked = await mkdtemp(path.join(os.tmpdir(), 'snode-locked-')); // mode 0700, owned by root
    await mkdir(path.join(locked, 'inner'));
    try {
      const result = await runCli(['migrate'], { DATA_DIR: path.join(locked, 'inner', 'data') });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(path.join(locked, 'inner', 'data'));
      expect(result.stderr).toMatch(/cannot be reached by the postgres user/);
    } finally {
      await rm(locked, { recursive: true, force: true });
    }
  });
});
