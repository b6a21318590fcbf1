#!/usr/bin/env node
/**
 * The `snode` command line. Exit codes: 0 success, 1 the operation failed, 2 bad usage or
 * configuration.
 */
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, describeConfig, loadConfig, type Config } from './config.js';
import { EmbeddedPostgresError } from './infra/embedded-postgres.js';
import { AppError } from './infra/errors.js';
import { createLogger } from './infra/logger.js';
import { MigrationError } from './infra/migrations.js';
import { loadServerSecret } from './infra/secrets.js';
import { openDatabase, serve } from './server.js';
import { ROLES, type Role } from './tenancy/api-keys.js';
import { TenancyService } from './tenancy/service.js';
import { AuditLog } from './audit/service.js';
import { parseAnchor, type ChainHead } from './audit/entry.js';
import { readFile } from 'node:fs/promises';
import { PgTenancyChanges } from './tenancy/change-bus.js';
import type { Actor } from './tenancy/actor.js';
import { runImportCommand } from './registry/import-command.js';
import { reportCsv } from './stats/csv.js';
import { StatsService } from './stats/service.js';
import type pg from 'pg';
import * as federationCli from './federation/cli.js';
import { KEY_ALGORITHMS, type KeyAlgorithm } from './federation/signing.js';

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

function envHelp(names: string[]): string {
  const rows = describeConfig().filter((r) => names.includes(r.name));
  return `\nEnvironment:\n${rows.map((r) => `  ${r.name.padEnd(22)} ${r.description} [default: ${r.default}]`).join('\n')}\n`;
}

const DB_ENV = ['DATABASE_URL', 'DATA_DIR', 'EMBEDDED_PG_PORT', 'API_KEY_SECRET', 'NODE_PREFIX', 'LOG_LEVEL'];

/** Runs `fn` with a migrated database and the tenancy service, printing its result (JSON unless a string). */
async function withTenancy(fn: (tenancy: TenancyService, config: Config, pool: pg.Pool) => Promise<unknown>): Promise<void> {
  const config = loadConfig();
  const log = createLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', { nodeId: config.NODE_ID }, true);
  const secret = await loadServerSecret(config, log);
  const database = await openDatabase(config, log);
  try {
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
const CLI_ACTOR: Actor = { kind: 'key', keyId: 'cli', role: 'admin', enterpriseId: null, prefixes: [] };

function buildProgram(): Command {
  const program = new Command('snode')
    .description('snode: a secondary node of the Industrial Internet identifier resolution system')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('serve')
    .description('start the node (HTTP API); embedded Postgres without DATABASE_URL, in-process cache without REDIS_URL')
    .addHelpText('after', envHelp(describeConfig().map((r) => r.name)))
    .action(async () => serve(loadConfig()));

  program
    .command('migrate')
    .description('apply pending database migrations and exit')
    .addHelpText('after', envHelp(DB_ENV))
    .action(async () => {
      const config = loadConfig();
      const log = createLogger(config.LOG_LEVEL, { nodeId: config.NODE_ID }, true);
      const database = await openDatabase(config, log);
      await database.close();
      process.stdout.write('migrations are up to date\n');
    });

  program
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
    });

  const admin = program.command('admin').description('manage enterprises, prefixes and API keys (works while the node runs)');
  admin.addHelpText('after', envHelp(DB_ENV));

  const enterprise = admin.command('enterprise').description('enterprises');
  enterprise
    .command('create')
    .description('register an enterprise')
    .requiredOption('--name <name>', 'company name')
    .requiredOption('--uscc <code>', 'unified social credit code (18 characters, GB 32100-2015)')
    .action((o: { name: string; uscc: string }) => withTenancy((t) => t.createEnterprise(o)));
  enterprise.command('list').description('list enterprises with their prefixes').action(() => withTenancy((t) => t.listEnterprises()));
  enterprise.command('show <id>').description('one enterprise').action((id: string) => withTenancy((t) => t.getEnterprise(id)));

  const prefix = admin.command('prefix').description('enterprise prefixes');
  prefix
    .command('add <prefix>')
    .description('allocate a prefix one segment below NODE_PREFIX to an enterprise')
    .requiredOption('--enterprise <id>', 'enterprise id')
    .action((p: string, o: { enterprise: string }) => withTenancy((t) => t.addPrefix(o.enterprise, p)));
  prefix.command('list').description('list allocated prefixes').action(() => withTenancy((t) => t.listPrefixes()));
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
      withTenancy((t) => t.createKey({ role: o.role, enterpriseId: o.enterprise ?? null, label: o.label ?? '', expiresAt: o.expires ?? null })),
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

  const federation = program.command('federation').description('the link with the national top-level node');
  federation.addHelpText('after', envHelp([...DB_ENV, 'NODE_ID', 'UPSTREAM_URLS', 'FEDERATION_KEY_FILE', 'FEDERATION_KEY_ALGORITHM']));
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
        const report = await federationCli.verify(pool, config, cliLog(config));
        if (report.drift) process.exitCode = EXIT_FAILED;
        return report;
      }),
    );
  federation
    .command('resync')
    .description('queue a full snapshot of every identifier for the top-level node, replacing its escrow copy (repairs drift)')
    .action(() => withTenancy((_t, _config, pool) => federationCli.resync(pool)));

  const audit = program.command('audit').description('the tamper-evident audit log');
  audit.addHelpText('after', envHelp(DB_ENV));
  audit
    .command('verify')
    .description('seal committed entries, recompute the hash chain and name the first entry that does not match (exit 1 if one does not)')
    .option('--anchor <seq:hash>', 'a head printed earlier by `snode audit head` (its "anchor"): the chain must pass through it, so removed newest entries are noticed')
    .option('--anchor-file <file>', 'the same, read from a file holding the JSON `snode audit head` printed')
    .action(async (o: { anchor?: string; anchorFile?: string }) => {
      const anchor = await readAnchor(o); // before the database opens: a bad anchor is a usage error
      await withTenancy(async (_tenancy, _config, pool) => {
        const log = createLogger('warn', {}, true);
        const result = await new AuditLog(pool, log).verify(anchor);
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

  const stats = program.command('stats').description('registration and resolution statistics');
  stats.addHelpText('after', envHelp([...DB_ENV, 'STATS_TIME_ZONE']));
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

  program
    .command('import <file>')
    .description('import identifiers from an NDJSON or CSV file, streamed in chunks, with progress (the same job as POST /api/imports)')
    .requiredOption('--prefix <prefix>', 'every line is imported under this prefix')
    .addOption(new Option('--format <format>', 'file format (default: from the extension, .csv or else NDJSON)').choices(['ndjson', 'csv']))
    .addOption(new Option('--mode <mode>', 'create: lines whose handle exists are rejected; upsert: replaced').choices(['create', 'upsert']).default('upsert'))
    .addHelpText('after', `
NDJSON: one {"suffix":"X","values":[...]} (or "handle") a line. CSV: a header "suffix,URL,EMAIL,2001:product.name"
(a type per column, optionally "index:type"), then one identifier a row; empty cells are left out.
Prints the job as JSON at the end; rejected lines: GET /api/imports/<id>/rejected. Exit 1 when the job failed.
${envHelp([...DB_ENV, 'REDIS_URL', 'REDIS_KEY_PREFIX'])}`)
    .action((file: string, o: { prefix: string; format?: 'ndjson' | 'csv'; mode: 'create' | 'upsert' }) =>
      withTenancy(async (tenancy, config, pool) => {
        const job = await runImportCommand(config, pool, tenancy, CLI_ACTOR, file, o);
        if (job.state !== 'done') process.exitCode = EXIT_FAILED;
        return job;
      }),
    );

  program.addHelpText('after', '\nExit codes: 0 success, 1 the operation failed, 2 bad usage or configuration.\nRun "snode config" for every environment variable.\n');
  return program;
}

async function main(argv: string[]): Promise<void> {
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
    } else {
      process.stderr.write(`snode: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT_FAILED;
    }
  }
}

await main(process.argv);
