/**
 * docker/Dockerfile and docker/compose.yaml against the program they package (no Docker engine
 * here): the image's start command is a command the CLI has, every variable the files set is one
 * the config schema knows and every value passes it, and the runtime stage carries every file the
 * compiled node reads.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli.js';
import { ConfigSchema, loadConfig } from '../../src/config.js';
import { NODE_FLAGS } from '../../bench/node-process.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const PACKAGE = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
const dockerfile = read('docker/Dockerfile');
const compose = parse(read('docker/compose.yaml'), { merge: true }) as {
  services: Record<string, { image?: string; build?: unknown; environment?: Record<string, string>; command?: string[]; entrypoint?: string[]; depends_on?: Record<string, { condition: string }> }>;
};
const envExample = Object.fromEntries(
  read('docker/.env.example').split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);
const CONFIG_NAMES = new Set(Object.keys(ConfigSchema.properties));
/** Every command of the CLI as typed: 'serve', 'admin key create', ... */
const COMMANDS: string[] = [];
const collect = (command: Command, path: string[]): void => {
  for (const sub of command.commands) {
    COMMANDS.push([...path, sub.name()].join(' '));
    collect(sub, [...path, sub.name()]);
  }
};
collect(buildProgram(), []);

/** ${NAME}, ${NAME:-default}, ${NAME:?message} as compose substitutes them, from docker/.env.example. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z_]+)(?::[-?][^}]*)?\}/g, (_m, name: string) => {
    expect(envExample, `docker/.env.example defines ${name}`).toHaveProperty(name);
    return envExample[name]!;
  });
}

/** The stages of the Dockerfile, with their instructions (continuation lines joined). */
function stages(): Array<{ name: string; lines: string[] }> {
  const out: Array<{ name: string; lines: string[] }> = [];
  const joined = dockerfile.replace(/\\\n/g, ' ').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
  for (const line of joined) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ name: from[1] ?? '', lines: [] });
    else out.at(-1)?.lines.push(line.trim());
  }
  return out;
}

const jsonArray = (line: string, instruction: string): string[] => JSON.parse(line.slice(instruction.length).trim()) as string[];

describe('docker/Dockerfile', () => {
  const all = stages();
  const runtime = all.at(-1)!;
  const find = (instruction: string) => runtime.lines.filter((l) => l.startsWith(`${instruction} `));

  it('is multi-stage: builds with dev dependencies, runs with production dependencies only', () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(all.some((s) => s.lines.some((l) => /npm ci --omit=dev/.test(l)))).toBe(true);
    expect(runtime.lines.some((l) => /^RUN .*npm (ci|install)(?!.*--omit=dev)/.test(l))).toBe(false);
    expect(runtime.lines.some((l) => l.startsWith('COPY --from=deps /app/node_modules'))).toBe(true);
  });

  it('runs as an unprivileged user and checks its health with a command the CLI has', () => {
    const user = find('USER');
    expect(user).toHaveLength(1);
    expect(user[0]).not.toMatch(/USER\s+(root|0)\b/);
    const health = find('HEALTHCHECK');
    expect(health).toHaveLength(1);
    const command = JSON.parse(health[0]!.slice(health[0]!.indexOf('CMD') + 3).trim()) as string[];
    expect(command).toEqual(['node', 'dist/main.js', 'healthcheck']);
    expect(COMMANDS).toContain('healthcheck');
  });

  it('starts `snode serve` through node itself (so SIGTERM reaches it)', () => {
    const entrypoint = jsonArray(find('ENTRYPOINT')[0]!, 'ENTRYPOINT');
    const cmd = jsonArray(find('CMD')[0]!, 'CMD');
    expect([...entrypoint, ...cmd]).toEqual(['node', '--use-largepages=silent', 'dist/main.js', 'serve']);
    // The same runtime flags as `npm start` and the nodes bench starts.
    expect(PACKAGE.scripts.start).toBe(`exec node ${NODE_FLAGS.join(' ')} dist/main.js serve`);
    expect(entrypoint.slice(1, -1)).toEqual(NODE_FLAGS);
    expect(COMMANDS).toContain('serve');
  });

  it('sets only variables of the config schema, with values it accepts', () => {
    const env: Record<string, string> = {};
    for (const line of find('ENV')) {
      for (const m of line.slice(4).matchAll(/([A-Z_]+)=(\S+)/g)) env[m[1]!] = m[2]!;
    }
    const names = Object.keys(env).filter((n) => n !== 'NODE_ENV');
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(CONFIG_NAMES.has(name), name).toBe(true);
    const config = loadConfig(env);
    expect(config.HOST).toBe('0.0.0.0');
    expect(config.DATA_DIR).toBe('/var/lib/snode');
    expect(find('EXPOSE')[0]).toBe(`EXPOSE ${config.PORT}`);
  });

  it('copies into the runtime stage every file the compiled node reads', () => {
    const copied = runtime.lines.filter((l) => l.startsWith('COPY ')).map((l) => l.split(/\s+/).at(-2)!);
    // What src/ reads at run time relative to dist/: new URL('../../<path>', import.meta.url).
    const wanted = new Set<string>();
    for (const file of readdirSync(new URL('../../src/', import.meta.url), { recursive: true }) as string[]) {
      if (!file.endsWith('.ts')) continue;
      for (const m of read(`src/${file}`).matchAll(/new URL\('\.\.\/\.\.\/([^']+)', import\.meta\.url\)/g)) {
        const path = m[1]!.replace(/\/$/, '');
        wanted.add(path.startsWith('src/') ? path : path.split('/')[0]!);
      }
    }
    expect([...wanted].sort()).toEqual(['migrations', 'package.json', 'proto', 'src/stats/dashboard']);
    for (const path of [...wanted, '/app/dist']) expect(copied.some((c) => c === path || c.endsWith(path)), path).toBe(true);
  });
});

describe('docker/compose.yaml', () => {
  const services = compose.services;
  const snodes = Object.entries(services).filter(([, s]) => s.image === 'snode:local');

  it('runs two processes of one secondary node, a top-level node, Postgres and Redis', () => {
    expect(Object.keys(services).sort()).toEqual(['node-1', 'node-2', 'postgres', 'redis', 'setup', 'top']);
    expect(snodes.map(([name]) => name).sort()).toEqual(['node-1', 'node-2', 'setup', 'top']);
    expect(services.top!.environment!.ROLE).toBe('top-level');
    for (const name of ['node-1', 'node-2']) {
      expect(services[name]!.depends_on!.setup!.condition).toBe('service_completed_successfully');
    }
  });

  it('wires every node by variables of the config schema, with values it accepts', () => {
    for (const [name, service] of snodes) {
      const env = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));
      // The setup job's own inputs for registering the node on the top-level node.
      const unknown = Object.keys(env).filter((k) => !CONFIG_NAMES.has(k) && !(name === 'setup' && k.startsWith('TOP_')));
      expect(unknown, name).toEqual([]);
      const config = loadConfig(env);
      expect(config.DATABASE_URL, name).toMatch(/@postgres:5432\//);
      expect(config.REDIS_URL, name).toBe('redis://redis:6379');
    }
  });

  it('gives the two processes of the node the same identity, and the top-level node its own', () => {
    const a = services['node-1']!.environment!;
    const b = services['node-2']!.environment!;
    for (const name of ['DATABASE_URL', 'API_KEY_SECRET', 'NODE_ID', 'NODE_PREFIX', 'REDIS_KEY_PREFIX', 'DATA_DIR', 'UPSTREAM_URLS']) expect(b[name], name).toBe(a[name]);
    const top = services.top!.environment!;
    expect(top.DATABASE_URL).not.toBe(a.DATABASE_URL);
    expect(top.API_KEY_SECRET).not.toBe(a.API_KEY_SECRET);
    expect(a.UPSTREAM_URLS).toBe('http://top:8080');
    expect(read('docker/initdb/10-top-level-database.sql')).toContain(`CREATE DATABASE ${top.DATABASE_URL!.split('/').at(-1)}`);
  });

  it("setup registers the node's key with the CLI's own commands", () => {
    const script = services.setup!.command!.join('\n');
    for (const command of ['migrate', 'federation public-key', 'admin register-node']) expect(script).toContain(`node dist/main.js ${command}`);
    for (const name of ['admin register-node', 'federation public-key', 'migrate']) expect(COMMANDS).toContain(name);
  });
});
