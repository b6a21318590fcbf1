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
import { PgTenancyChanges } from './tenancy/change-bus.js';
import type { Actor } from './tenancy/actor.js';
import { reportCsv } from './stats/csv.js';
import { StatsService } from './stats/service.js';
import type pg from 'pg';

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

  const audit = program.command('audit').description('the tamper-evident audit log');
  audit.addHelpText('after', envHelp(DB_ENV));
  audit
    .command('verify')
    .description('seal committed entries, recompute the hash chain and name the first entry that does not match (exit 1 if one does not)')
    .action(() =>
      withTenancy(async (_tenancy, _config, pool) => {
        const log = createLogger('warn', {}, true);
        const result = await new AuditLog(pool, log).verify();
        if (!result.ok) process.exitCode = EXIT_FAILED;
        return result;
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

  program.addHelpText('after', '\nExit codes: 0 success, 1 the operation failed, 2 bad usage or configuration.\nRun "snode config" for every environment variable.\n');
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
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
