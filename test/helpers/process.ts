/** Real node processes for e2e tests: started from the built CLI, watched through their JSON log. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface NodeProcess {
  child: ChildProcess;
  url: string;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  output(): string;
  /** Sends the signal to the node and resolves with its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code once the node exits by itself (after a signal already sent). */
  exited(): Promise<number | null>;
  /** Cleanup after a failed test: SIGKILL to the whole process group (npm, node, postgres). */
  kill(): void;
}

/** Starts `command` (default: the README's `npm start`) and waits for the "snode listening" line. */
export async function startProcess(
  env: Record<string, string>,
  command: string[] = ['npm', 'start'],
  user: { uid: number; gid: number } | undefined = undefined,
  timeoutMs = 60_000,
): Promise<NodeProcess> {
  const baseEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'PORT', 'DATA_DIR', 'API_KEY_SECRET', 'NODE_PREFIX']) delete baseEnv[name];
  // Its own process group, so a failed test can kill everything it started.
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: { ...baseEnv, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...user,
  });
  const logs: Array<Record<string, unknown>> = [];
  let text = '';
  let buffered = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    buffered += chunk.toString();
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.startsWith('{')) {
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      }
      newline = buffered.indexOf('\n');
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const url = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`node did not start within ${timeoutMs} ms:\n${text}`)), timeoutMs);
    const poll = setInterval(() => {
      const line = logs.find((l) => l.msg === 'snode listening');
      if (line) {
        clearInterval(poll);
        clearTimeout(deadline);
        resolve(String(line.url));
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(poll);
      clearTimeout(deadline);
      reject(new Error(`node exited with ${code} before listening:\n${text}`));
    });
  });
  return {
    child,
    url,
    logs,
    output: () => text,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
    exited: () => exited,
    kill: () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The process's resident-memory high-water mark (VmHWM), sampled every 200 ms until it exits. */
  peakRssMiB: number;
}

function highWaterMiB(pid: number | undefined): number {
  try {
    const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib ? Number(kib) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs `snode ARGS` from dist/ to completion. */
export function runCli(args: string[], env: Record<string, string> = {}, user?: { uid: number; gid: number }): Promise<CliResult> {
  const baseEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'PORT', 'DATA_DIR', 'API_KEY_SECRET', 'NODE_PREFIX', 'LOG_LEVEL']) delete baseEnv[name];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/main.js', ...args], { cwd: ROOT, env: { ...baseEnv, ...env }, ...user });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    let peakRssMiB = 0;
    const sampler = setInterval(() => (peakRssMiB = Math.max(peakRssMiB, highWaterMiB(child.pid))), 200);
    child.once('exit', (code) => {
      clearInterval(sampler);
      resolve({ code, stdout, stderr, peakRssMiB });
    });
  });
}

/** Cleanup after a failed test: the embedded postmaster runs in its own session, so kill it by pid. */
export function killEmbeddedPostgres(dataDir: string): void {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pid > 0) process.kill(pid, 'SIGKILL');
  } catch {
    // not running
  }
}
