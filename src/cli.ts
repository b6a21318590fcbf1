/**
 * The `snode` command line (src/main.ts runs it). Exit codes: 0 success, 1 the operation failed, 2 bad usage or
 * configuration. Every command's --help lists its options and the environment variables it
 * reads (the nearest ancestor's list when it has none of its own) and the exit codes.
 */
import { randomBytes } from 'node:crypto';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, describeConfig, loadConfig, type Config } from './config.js';
import { EmbeddedPostgresError } from './infra/embedded-postgres.js';
import { AppError } from './infra/errors.js';
import { createLogger } from './infra/logger.js';
import { MigrationError } from './infra/migrations.js';
import { existingSecret, loadServerSecret } from './infra/secrets.js';
import { openDatabase, serve } from './server.js';
import { ROLES, type Role } from './tenancy/api-keys.js';
import { holdsApiKeys } from './tenancy/repository.js';
import { TenancyService } from './tenancy/service.js';
import { AuditLog } from './audit/service.js';
import { parseAnchor, type ChainHead } from './audit/entry.js';
import { readFile } from 'node:fs/promises';
import { PgTenancyChanges } from './tenancy/change-bus.js';
import type { Actor } from './tenancy/actor.js';
import { runImportCommand } from './registry/import-command.js';
import { QR_DEFAULT_ECC, QR_ECC_LEVELS, QR_SIZE, type QrEcc, type QrFormat } from './resolver/qr.js';
import { runQrCommand } from './resolver/qr-command.js';
import { reportCsv } from './stats/csv.js';
import { StatsService } from './stats/service.js';
import type pg from 'pg';
import * as federationCli from './federation/cli.js';
import { KEY_ALGORITHMS, type KeyAlgorithm } from './federation/signing.js';
import { Agent, request } from 'undici';

/** true when GET url answers 200 within timeoutMs. A node's own certificate is not checked: this asks the process on this machine whether it is alive. */
async function healthcheck(url: string, timeoutMs: number): Promise<boolean> {
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false, timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    const answer = await request(url, { dispatcher });
    await answer.body.dump();
    return answer.statusCode === 200;
  } catch (err) {
    process.stderr.write(`snode: healthcheck: ${(err as Error).message}\n`);
    return false;
  } finally {
    await dispatcher.close();
  }
}

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_CODES = 'Exit codes: 0 success, 1 the operation failed (or found a problem: a broken audit chain, federation drift, a failed import), 2 bad usage or configuration.';

function envHelp(names: string[]): string {
  const rows = describeConfig().filter((r) => names.includes(r.name));
  if (rows.length === 0) return '\nEnvironment: none.\n';
  return `\nEnvironment:\n${rows.map((r) => `  ${r.name.padEnd(22)} ${r.description} [default: ${r.default}]`).join('\n')}\n`;
}

/** The environment variables each command reads, given where they are known (see withHelp). */
const ENV_OF = new WeakMap<Command, string[]>();
const env = <C extends Command>(command: C, names: string[]): C => {
  ENV_OF.set(command, names);
  return command;
};

/** Every command's help ends with its environment variables (its own, or its nearest ancestor's) and the exit codes. */
function withHelp(command: Command, inherited: string[]): void {
  const names = ENV_OF.get(command) ?? inherited;
  if (command.parent) command.addHelpText('after', `${envHelp(names)}\n${EXIT_CODES}\n`);
  for (const sub of command.commands) withHelp(sub, names);
}

/** Progress of a step that is one long statement: what it does, then how long it took (stderr). */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  process.stderr.write(`snode: ${what}...\n`);
  const result = await fn();
  process.stderr.write(`snode: ${what}: done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return result;
}

/** A running count on a terminal; a line every few seconds otherwise. */
function counter(what: string): (n: number, final?: boolean) => void {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return (n, final = false) => {
    const now = Date.now();
    if (!final && now - last < (tty ? 200 : 5000)) return;
    last = now;
    const text = `snode: ${what}: ${n.toLocaleString('en')}`;
    process.stderr.write(tty ? `\r${text}${final ? '\n' : ''}` : `${text}\n`);
  };
}

const DB_ENV = ['DATABASE_URL', 'DATA_DIR', 'EMBEDDED_PG_PORT', 'API_KEY_SECRET', 'NODE_PREFIX', 'LOG_LEVEL'];

/**
 * Runs `fn` with a migrated database and the tenancy service, printing its result (JSON unless a
 * string). Only a command that hashes keys (`hashesKeys`: admin key create) needs the server
 * secret, and may make the first one; the others use the node's when there is one, else a
 * throwaway nothing is hashed with, so a read (audit verify after a restore) runs anywhere.
 */
async function withTenancy(fn: (tenancy: TenancyService, config: Config, pool: pg.Pool) => Promise<unknown>, hashesKeys = false): Promise<void> {
  const config = loadConfig();
  const log = createLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', { nodeId: config.NODE_ID }, true);
  let secret = hashesKeys ? undefined : ((await existingSecret(config)) ?? randomBytes(32));
  const database = await openDatabase(config, log, undefined, async (pool) => {
    secret ??= await loadServerSecret(config, log, () => holdsApiKeys(pool));
  });
  try {
    if (!secret) throw new Error('the server secret was not loaded');
    // Publishing only (NOTIFY): a revocation or prefix change reaches running nodes' key caches at once.
    const changes = new PgTenancyChanges(database.pool, log);
    const tenancy = new TenancyService(database.pool, secret, config.NODE_PREFIX, { audit: new AuditLog(database.pool, log), changes });
    const result = await fn(tenancy, config, database.pool);
    process.stdout.write(typeof result === 'string' ? result : `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await database.close();
  }
}

/** The anchor of `audit verify`: --anchor seq:hash, or --anchor-file with the JSON of `audit head`. */
async function readAnchor(o: { anchor?: string; anchorFile?: string }): Promise<ChainHead | undefined> {
  if (o.anchor !== undefined && o.anchorFile !== undefined) throw new CommanderError(EXIT_USAGE, 'snode.usage', 'give --anchor or --anchor-file, not both');
  let text = o.anchor;
  if (o.anchorFile !== undefined) {
    let json: { head?: { anchor?: unknown }; anchor?: unknown };
    try {
      json = JSON.parse(await readFile(o.anchorFile, 'utf8')) as typeof json;
    } catch (err) {
      throw new CommanderError(EXIT_USAGE, 'snode.usage', `--anchor-file ${o.anchorFile}: ${(err as Error).message}`);
    }
    const found = json.head?.anchor ?? json.anchor;
    text = typeof found === 'string' ? found : '';
  }
  if (text === undefined) return undefined;
  const anchor = parseAnchor(text);
  if (!anchor) throw new CommanderError(EXIT_USAGE, 'snode.usage', `the anchor must be <seq>:<64 hex digits> as \`snode audit head\` prints it; got ${JSON.stringify(text)}`);
  return anchor;
}

const cliLog = (config: Config) => createLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', { nodeId: config.NODE_ID }, true);

/** The command line acts with the database's authority: as an admin. */
const CLI_ACTOR: Actor = { kind: 'key', keyId: 'cli', role: 'admin', enterpriseId: null, prefixes: [], system: true };

export function buildProgram(): Command {
  const program = new Command('snode')
    .description('snode: a secondary node of the Industrial Internet identifier resolution system')
    .showHelpAfterError()
    .exitOverride();

  env(program
    .command('serve')
    .description('start the node (HTTP API); embedded Postgres without DATABASE_URL, in-process cache without REDIS_URL')
    .action(async () => serve(loadConfig())), describeConfig().map((r) => r.name));

  env(program
    .command('migrate')
    .description('apply pending database migrations and exit (each one is printed as it is applied)')
    .action(async () => {
      const config = loadConfig();
      const log = createLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', { nodeId: config.NODE_ID }, true);
      const database = await openDatabase(config, log, (name) => process.stderr.write(`snode: applied migration ${name}\n`));
      await database.close();
      process.stdout.write(database.applied.length > 0 ? `applied ${database.applied.length} migration(s); the schema is up to date\n` : 'migrations are up to date\n');
    }), DB_ENV);

  env(program
    .command('healthcheck')
    .description("exit 0 when the node on HOST:PORT answers GET /healthz, 1 otherwise (the container's HEALTHCHECK)")
    .option('--timeout <ms>', 'how long to wait for the answer, 1 to 600000', timeoutMs, 3000)
    .action(async (o: { timeout: number }) => {
      const config = loadConfig();
      if (config.PORT === 0) throw new ConfigError('invalid configuration:\n  PORT: healthcheck needs the port the node listens on (not 0)');
      const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
      const url = `${config.TLS_CERT ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${config.PORT}/healthz`;
      const ok = await healthcheck(url, o.timeout);
      process.stdout.write(`${ok ? 'ok' : 'unhealthy'}: ${url}\n`);
      if (!ok) process.exitCode = EXIT_FAILED;
    }), ['HOST', 'PORT', 'TLS_CERT']);

  env(program
    .command('config')
    .description('list every environment variable with its default and meaning')
    .option('--markdown', 'print a Markdown table (as in README.md)')
    .action((options: { markdown?: boolean }) => {
      const rows = describeConfig();
      if (options.markdown) {
        process.stdout.write(`| Variable | Default | Meaning |\n|---|---|---|\n${rows.map((r) => `| \`${r.name}\` | \`${r.default}\` | ${r.description} |`).join('\n')}\n`);
      } else {
        process.stdout.write(`${rows.map((r) => `${r.name}=${r.default}\n    ${r.description}`).join('\n')}\n`);
      }
    }), []);

  const admin = env(program.command('admin').description('manage enterprises, prefixes and API keys (works while the node runs)'), DB_ENV);

  const enterprise = admin.command('enterprise').description('enterprises');
  enterprise
    .command('create')
    .description('register an enterprise')
    .requiredOption('--name <name>', 'company name')
    .requiredOption('--uscc <code>', 'unified social credit code (18 characters, GB 32100-2015)')
    .action((o: { name: string; uscc: string }) => withTenancy((t) => t.createEnterprise(o)));
  enterprise.command('list').description('list enterprises with their prefixes')
    .option('--limit <n>', 'at most this many, 1 to 10000', pageSize, 1000)
    .option('--offset <n>', 'skip this many first', offsetOf, 0)
    .action((o: Page) => withTenancy(async (t) => paged(await t.listEnterprises(o.limit, o.offset), o)));
  enterprise.command('show <id>').description('one enterprise').action((id: string) => withTenancy((t) => t.getEnterprise(id)));

  const prefix = admin.command('prefix').description('enterprise prefixes');
  prefix
    .command('add <prefix>')
    .description('allocate a prefix one segment below NODE_PREFIX to an enterprise')
    .requiredOption('--enterprise <id>', 'enterprise id')
    .action((p: string, o: { enterprise: string }) => withTenancy((t) => t.addPrefix(o.enterprise, p)));
  prefix.command('list').description('list allocated prefixes')
    .option('--limit <n>', 'at most this many, 1 to 10000', pageSize, 10000)
    .option('--offset <n>', 'skip this many first', offsetOf, 0)
    .action((o: Page) => withTenancy(async (t) => paged(await t.listPrefixes(o.limit, o.offset), o)));
  prefix.command('disable <prefix>').description('refuse every write under a prefix (its records still resolve)')
    .action((p: string) => withTenancy((t) => t.setPrefixState(p, 'disabled')));
  prefix.command('enable <prefix>').description('accept writes under a disabled prefix again')
    .action((p: string) => withTenancy((t) => t.setPrefixState(p, 'active')));

  const key = admin.command('key').description('API keys');
  key
    .command('create')
    .description('create an API key; the key is printed once and stored only as a hash')
    .addOption(new Option('--role <role>', 'role').choices([...ROLES]).makeOptionMandatory())
    .option('--enterprise <id>', 'enterprise id (enterprise keys only)')
    .option('--label <label>', 'free text to recognise the key by')
    .option('--expires <iso>', 'ISO 8601 date-time after which the key is refused')
    .action((o: { role: Role; enterprise?: string; label?: string; expires?: string }) =>
      withTenancy((t) => t.createKey({ role: o.role, enterpriseId: o.enterprise ?? null, label: o.label ?? '', expiresAt: o.expires ?? null }), true),
    );
  key
    .command('list')
    .description('list API keys (never the keys themselves)')
    .option('--enterprise <id>', 'only this enterprise')
    .action((o: { enterprise?: string }) => withTenancy((t) => t.listKeys(o.enterprise)));
  key.command('revoke <id>').description('revoke an API key').action((id: string) => withTenancy((t) => t.revokeKey(id)));

  admin
    .command('register-node')
    .description('top-level role: register a secondary node (its id, allocated node prefix and public key); again to rotate its key')
    .requiredOption('--id <nodeId>', "the node's NODE_ID")
    .requiredOption('--prefix <prefix>', 'the node prefix allocated to it, e.g. 88.118')
    .requiredOption('--public-key <file>', "PEM file of the node's public key (snode federation public-key prints it)")
    .addOption(new Option('--algorithm <algorithm>', 'key algorithm (detected from the key when left out)').choices([...KEY_ALGORITHMS]))
    .option('--url <baseUrl>', 'base URL the node resolves at (the node also reports it itself)')
    .action((o: { id: string; prefix: string; publicKey: string; algorithm?: KeyAlgorithm; url?: string }) =>
      withTenancy((_t, config, pool) => federationCli.registerNode(pool, config, cliLog(config), o)),
    );

  const federation = env(program.command('federation').description('the link with the national top-level node'),
    [...DB_ENV, 'NODE_ID', 'UPSTREAM_URLS', 'FEDERATION_KEY_FILE', 'FEDERATION_KEY_ALGORITHM']);
  federation
    .command('public-key')
    .description("print this node's federation public key (generating the key pair on first use)")
    .action(async () => {
      const config = loadConfig();
      process.stdout.write(await federationCli.publicKey(config, cliLog(config)));
    });
  federation
    .command('verify')
    .description('compare per-prefix counts and digests with the escrow copy on the top-level node; exit 1 on drift')
    .action(() =>
      withTenancy(async (_t, config, pool) => {
        const report = await step('comparing every prefix with the escrow copy', () => federationCli.verify(pool, config, cliLog(config)));
        if (report.drift) process.exitCode = EXIT_FAILED;
        return report;
      }),
    );
  federation
    .command('resync')
    .description('queue a full snapshot of every identifier for the top-level node, replacing its escrow copy (repairs drift; with the node stopped, also realigns the stream after a restore)')
    .action(() => withTenancy((_t, config, pool) => step('queuing a snapshot of every identifier', () => federationCli.resync(pool, config, cliLog(config)))));

  const audit = env(program.command('audit').description('the tamper-evident audit log'), DB_ENV);
  audit
    .command('verify')
    .description('seal committed entries, recompute the hash chain and name the first entry that does not match (exit 1 if one does not)')
    .option('--anchor <seq:hash>', 'a head printed earlier by `snode audit head` (its "anchor"): the chain must pass through it, so removed newest entries are noticed')
    .option('--anchor-file <file>', 'the same, read from a file holding the JSON `snode audit head` printed')
    .action(async (o: { anchor?: string; anchorFile?: string }) => {
      const anchor = await readAnchor(o); // before the database opens: a bad anchor is a usage error
      await withTenancy(async (_tenancy, _config, pool) => {
        const log = createLogger('warn', {}, true);
        const progress = counter('audit entries checked');
        const result = await new AuditLog(pool, log).verify(anchor, progress);
        progress(result.checked, true);
        if (!result.ok) process.exitCode = EXIT_FAILED;
        return result;
      });
    });
  audit
    .command('head')
    .description("seal committed entries and print the chain's head (seq, hash, anchor): keep it outside the database to anchor the log")
    .action(() =>
      withTenancy(async (_tenancy, _config, pool) => {
        const head = await new AuditLog(pool, createLogger('warn', {}, true)).head();
        return { head };
      }),
    );

  const stats = env(program.command('stats').description('registration and resolution statistics'), [...DB_ENV, 'STATS_TIME_ZONE']);
  stats
    .command('report')
    .description('the period report an auditor files: one row per enterprise and prefix')
    .requiredOption('--period <period>', 'YYYY, YYYY-Qn (quarter), YYYY-MM (month) or YYYY-MM-DD')
    .option('--csv', 'CSV (UTF-8 with BOM) instead of JSON')
    .action((o: { period: string; csv?: boolean }) =>
      withTenancy(async (tenancy, config, pool) => {
        const report = await new StatsService(pool, tenancy, config.STATS_TIME_ZONE).report(CLI_ACTOR, o.period);
        return o.csv ? reportCsv(report.rows) : report;
      }),
    );

  env(program
    .command('import <file>')
    .description('import identifiers from an NDJSON or CSV file, streamed in chunks, with progress (the same job as POST /api/imports)')
    .requiredOption('--prefix <prefix>', 'every line is imported under this prefix')
    .addOption(new Option('--format <format>', 'file format (default: from the extension, .csv or else NDJSON)').choices(['ndjson', 'csv']))
    .addOption(new Option('--mode <mode>', 'create: lines whose handle exists are rejected; upsert: replaced').choices(['create', 'upsert']).default('upsert'))
    .addHelpText('after', `
NDJSON: one {"suffix":"X","values":[...]} (or "handle") a line. CSV: a header "suffix,URL,EMAIL,2001:product.name"
(a type per column, optionally "index:type"), then one identifier a row; empty cells are left out.
Prints the job as JSON at the end; rejected lines: GET /api/imports/<id>/rejected. Exit 1 when the job failed.`)
    .action((file: string, o: { prefix: string; format?: 'ndjson' | 'csv'; mode: 'create' | 'upsert' }) =>
      withTenancy(async (tenancy, config, pool) => {
        const job = await runImportCommand(config, pool, tenancy, CLI_ACTOR, file, o);
        if (job.state !== 'done') process.exitCode = EXIT_FAILED;
        return job;
      }),
    ), [...DB_ENV, 'REDIS_URL', 'REDIS_KEY_PREFIX', 'UPSTREAM_URLS']);

  env(program
    .command('qr <handle>')
    .description("the QR code of an identifier this node holds, for printing on parts and packaging: it encodes the handle's public URL (PUBLIC_URL/<handle>), as GET /<handle>?qr= does")
    .addOption(new Option('--format <format>', 'image format (default: from the --out extension, else svg)').choices(['svg', 'png']))
    .option('--size <pixels>', `image width and height in pixels, ${QR_SIZE.min} to ${QR_SIZE.max}`, qrSize, QR_SIZE.default)
    .option('--ecc <level>', 'error correction level: L (7%), M (15%), Q (25%) or H (30%)', qrEcc, QR_DEFAULT_ECC)
    .option('--out <file>', 'write the image to this file and print the URL it encodes (default: the image to standard output)')
    .addHelpText('after', `
Refuses (exit 1) a handle the node does not hold. Without PUBLIC_URL the code holds http://HOST:PORT.`)
    .action((handle: string, o: { format?: QrFormat; size: number; ecc: QrEcc; out?: string }, command: Command) => {
      const format: QrFormat = o.format ?? (o.out?.toLowerCase().endsWith('.png') ? 'png' : 'svg');
      if (format === 'png' && !o.out && process.stdout.isTTY) command.error('snode: a PNG is not for a terminal: give --out FILE (or redirect standard output)', { exitCode: EXIT_USAGE });
      return withTenancy(async (_t, config, pool) => {
        const text = await runQrCommand(config, pool, cliLog(config), handle, { format, size: o.size, ecc: o.ecc, ...(o.out ? { out: o.out } : {}) });
        return o.out ? `${text}\n` : '';
      });
    }), [...DB_ENV, 'PUBLIC_URL', 'HOST', 'PORT']);

  program.addHelpText('after', `\n${EXIT_CODES}\nEnvironment: every command reads its settings from environment variables; "snode <command> --help" lists\nthe ones it uses, "snode config" all of them with their defaults.\n`);
  withHelp(program, []);
  return program;
}

/** An option parser for a whole number from `min` to `max` (commander answers a bad one with exit 2). */
function wholeNumber(min: number, max: number, of = ''): (value: string) => number {
  return (value) => {
    const n = /^[0-9]{1,15}$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) throw new InvalidArgumentError(`a whole number${of} from ${min} to ${max}`);
    return n;
  };
}

const qrSize = wholeNumber(QR_SIZE.min, QR_SIZE.max, ' of pixels');
const timeoutMs = wholeNumber(1, 600_000, ' of milliseconds');
const pageSize = wholeNumber(1, 10_000);
const offsetOf = wholeNumber(0, Number.MAX_SAFE_INTEGER);

interface Page {
  limit: number;
  offset: number;
}

/** A full page says so on stderr: there may be more (stdout stays the JSON list). */
function paged<T>(rows: T[], page: Page): T[] {
  if (rows.length === page.limit) process.stderr.write(`snode: ${rows.length} shown, there may be more: --offset ${page.offset + rows.length}\n`);
  return rows;
}

function qrEcc(value: string): QrEcc {
  const level = value.toUpperCase();
  if (!(QR_ECC_LEVELS as readonly string[]).includes(level)) throw new InvalidArgumentError('L, M, Q or H');
  return level as QrEcc;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'snode.usage') process.stderr.write(`snode: ${err.message}\n`); // ours; commander prints its own
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
    } else if (err instanceof ConfigError) {
      process.stderr.write(`snode: ${err.message}\n`);
      process.exitCode = EXIT_USAGE;
    } else if (err instanceof AppError) {
      process.stderr.write(`snode: ${err.code}: ${err.message}\n`);
      process.exitCode = EXIT_FAILED;
    } else if (err instanceof MigrationError) {
      process.stderr.write(`snode: migration refused: ${err.message}\n`);
      process.exitCode = EXIT_FAILED;
    } else if (err instanceof EmbeddedPostgresError) {
      process.stderr.write(`snode: ${err.message}\n`);
      process.exitCode = EXIT_FAILED;
    } else if (reported(err) !== undefined) {
      // A system or database error (a missing file, a port in use, Postgres refusing): its
      // message says it; a stack trace would bury it. LOG_LEVEL=debug shows the stack.
      process.stderr.write(`snode: ${reported(err)}${process.env.LOG_LEVEL === 'debug' ? `\n${(err as Error).stack ?? ''}` : ''}\n`);
      process.exitCode = EXIT_FAILED;
    } else {
      process.stderr.write(`snode: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT_FAILED;
    }
  }
}

/**
 * The message of an error of the system (errno: ENOENT, EADDRINUSE, ECONNREFUSED...) or of
 * Postgres (an error with a severity and an SQLSTATE); undefined for anything else, whose stack is
 * printed (Node's own ERR_* codes included: those are usually bugs). A connection refused on
 * both 127.0.0.1 and ::1 is an AggregateError with no message of its own.
 */
function reported(err: unknown): string | undefined {
  if (!(err instanceof Error) || typeof (err as { code?: unknown }).code !== 'string') return undefined;
  const code = (err as Error & { code: string }).code;
  if (!/^E[A-Z0-9]+$/.test(code) && !('severity' in err)) return undefined;
  if (err.message) return err.message;
  const inner = err instanceof AggregateError ? err.errors.map((e: unknown) => (e as Error).message).filter(Boolean) : [];
  return inner.length > 0 ? `${code}: ${inner.join('; ')}` : code;
}
