/** A node process the bench starts (`node dist/main.js serve`), watched through its JSON log. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchError } from './errors.js';

/** dist/main.js, next to this file's folder (dist/bench-runner/). */
export const NODE_MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/**
 * The node's runtime flags, as `npm start` and docker/Dockerfile give them: node's own code
 * (V8, libuv, the HTTP parser) remapped onto 2 MiB pages, which cost this virtual machine far
 * fewer TLB misses (bench/README.md). `silent`: no warning where the system cannot.
 */
export const NODE_FLAGS = ['--use-largepages=silent'];

const LOG_TAIL_LINES = 200;

export interface StartSpec {
  /** Full environment of the child. */
  env: NodeJS.ProcessEnv;
  /** --cpu-prof into this folder. */
  profileDir?: string;
  startTimeoutMs?: number;
  /** DATA_DIR: to find an embedded Postgres left behind by a hard kill. */
  dataDir: string;
  /**
   * Another node in DATA_DIR runs the embedded Postgres and this one attaches to it: a hard kill
   * of this node must leave that Postgres alone.
   */
  beside?: boolean;
}

/** Every node process started and not yet exited (a second Ctrl-C kills them all, whoever started them). */
const LIVE = new Map<number, string | undefined>();
/** Starts still waiting for "snode listening": a first Ctrl-C fails them at once. */
const WAITING = new Set<(err: Error) => void>();

/** SIGKILL every node process the bench has started and that still runs (and its embedded Postgres). */
export function killAllNodes(): void {
  for (const [pid, dataDir] of LIVE) killGroup(pid, dataDir);
}

/** Fails every start still waiting for its node to listen (the node is killed). */
export function abortStarts(): void {
  for (const fail of WAITING) fail(new BenchError('interrupted while a node was starting'));
}

export class NodeProcess {
  readonly url: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly tail: string[];
  /** "code 0", "signal SIGKILL": how the process ended. */
  private readonly exited: Promise<string>;
  /** Undefined when the embedded Postgres in DATA_DIR belongs to another node. */
  private readonly dataDir: string | undefined;

  private constructor(child: ChildProcess, url: string, tail: string[], exited: Promise<string>, dataDir: string | undefined) {
    this.child = child;
    this.url = url;
    this.pid = child.pid!;
    this.tail = tail;
    this.exited = exited;
    this.dataDir = dataDir;
  }

  static async start(spec: StartSpec): Promise<NodeProcess> {
    const args = [...NODE_FLAGS, ...(spec.profileDir ? ['--cpu-prof', '--cpu-prof-dir', spec.profileDir] : []), NODE_MAIN, 'serve'];
    // Its own process group, so a failing or interrupted bench can kill everything it started.
    const child = spawn(process.execPath, args, { env: spec.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const ownPostgres = spec.beside ? undefined : spec.dataDir;
    if (child.pid !== undefined) {
      const pid = child.pid;
      LIVE.set(pid, ownPostgres);
      child.once('exit', () => LIVE.delete(pid));
    }
    const tail: string[] = [];
    let url: string | undefined;
    let onUrl: ((url: string) => void) | undefined;
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
    };
    let buffered = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        keep(line);
        if (url === undefined && line.includes('snode listening')) {
          try {
            const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
            if (entry.msg === 'snode listening' && typeof entry.url === 'string') {
              url = entry.url;
              onUrl?.(url);
            }
          } catch {
            // not a JSON log line
          }
        }
        newline = buffered.indexOf('\n');
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => chunk.split('\n').filter(Boolean).forEach(keep));
    const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`)));
    const spawnFailed = new Promise<never>((_, reject) => child.once('error', reject));

    const timeoutMs = spec.startTimeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    let fail: ((err: Error) => void) | undefined;
    try {
      const listening = await Promise.race([
        new Promise<string>((resolve) => (onUrl = resolve)),
        spawnFailed,
        new Promise<never>((_, reject) => {
          fail = reject;
          WAITING.add(reject);
        }),
        exited.then((how) => {
          throw new BenchError(`the node exited (${how}) before listening:\n${tail.join('\n')}`);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new BenchError(`the node did not log "snode listening" within ${timeoutMs} ms:\n${tail.join('\n')}`)), timeoutMs);
        }),
      ]);
      return new NodeProcess(child, listening, tail, exited, ownPostgres);
    } catch (err) {
      killGroup(child.pid, ownPostgres);
      throw err;
    } finally {
      clearTimeout(timer);
      if (fail) WAITING.delete(fail);
    }
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  logTail(lines = 40): string {
    return this.tail.slice(-lines).join('\n');
  }

  /** SIGTERM (the node finishes in-flight requests, stops its embedded Postgres) and wait for the exit: "code 0" when clean. */
  async stop(timeoutMs = 30_000): Promise<string> {
    if (!this.alive()) return this.exited;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([this.exited, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)))]);
    clearTimeout(timer);
    if (code === 'timeout') {
      this.kill();
      throw new BenchError(`the node (pid ${this.pid}) did not exit within ${timeoutMs} ms of SIGTERM; killed:\n${this.logTail()}`);
    }
    return code;
  }

  /** SIGKILL to the node's process group, and to an embedded Postgres it runs (in its own session). */
  kill(): void {
    killGroup(this.pid, this.dataDir);
  }
}

function killGroup(pid: number | undefined, dataDir: string | undefined): void {
  if (pid) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (dataDir === undefined) return;
  try {
    const pgPid = Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pgPid > 0) process.kill(pgPid, 'SIGKILL');
  } catch {
    // no embedded Postgres running
  }
}
