/** `snode import FILE --prefix P`: the streaming import, run by the command line on its own file. */
import { stat } from 'node:fs/promises';
import type pg from 'pg';
import type { Config } from '../config.js';
import { AuditLog } from '../audit/service.js';
import { auditSink } from '../audit/sink.js';
import { writesSyncUpstream } from '../federation/index.js';
import { outboxSink } from '../federation/outbox-sink.js';
import { createLogger } from '../infra/logger.js';
import { openCache, tuneHeap } from '../server.js';
import { PgTenancyChanges } from '../tenancy/change-bus.js';
import type { Actor } from '../tenancy/actor.js';
import type { TenancyService } from '../tenancy/service.js';
import type { ImportJob } from './import-jobs.js';
import type { ImportFormat, ImportMode } from './import-lines.js';
import { buildWriters } from './writers.js';

export interface ImportCommandOptions {
  prefix: string;
  format?: ImportFormat;
  mode: ImportMode;
}

const number = (n: number): string => n.toLocaleString('en');

/** How long an import that could not reach Redis keeps trying to deliver its invalidations before it exits. */
const INVALIDATION_GRACE_MS = 10_000;

/** A progress bar on a terminal; a line every few seconds otherwise (logs, CI). */
function progressPrinter(total: number): (counts: Pick<ImportJob, 'linesRead' | 'written' | 'rejected'>, bytesRead: number, final?: boolean) => void {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return (counts, bytesRead, final = false) => {
    const now = Date.now();
    if (!final && now - last < (tty ? 200 : 5000)) return;
    last = now;
    const share = total > 0 ? Math.min(1, bytesRead / total) : 1;
    const bar = `[${'#'.repeat(Math.round(share * 30)).padEnd(30, '.')}]`;
    const text = `${bar} ${(share * 100).toFixed(0).padStart(3)}%  ${number(counts.linesRead)} lines, ${number(counts.written)} written, ${number(counts.rejected)} rejected`;
    process.stderr.write(tty ? `\r${text}${final ? '\n' : ''}` : `${text}\n`);
  };
}

/** Runs the import on the command line's database; the job (with its id, for GET /api/imports/{id}) is the result. */
export async function runImportCommand(config: Config, pool: pg.Pool, tenancy: TenancyService, actor: Actor, file: string, options: ImportCommandOptions): Promise<ImportJob> {
  tuneHeap(config); // as serve does: a million lines of promoted garbage must not become resident memory
  const format: ImportFormat = options.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  const log = createLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', { nodeId: config.NODE_ID }, true);
  const { size } = await stat(file);
  // Disabled prefixes as they are when the command starts.
  await tenancy.loadDisabled();
  const cache = await openCache(config, log);
  if (!config.REDIS_URL) {
    // No channel to the nodes' caches: they keep serving what they hold until it expires.
    process.stderr.write(`snode import: REDIS_URL is not set, so running nodes are not told what this import writes: they serve their cached copies (not-found answers too) until these expire (CACHE_MAX_TTL ${config.CACHE_MAX_TTL} s, NEGATIVE_CACHE_TTL ${config.NEGATIVE_CACHE_TTL} s). Set the nodes' REDIS_URL, or upload with POST /api/imports.\n`);
  }
  // Hears template changes made while the import runs (and tells nodes when it first uses one).
  const changes = new PgTenancyChanges(pool, log);
  await changes.start();
  try {
    // The same sinks as the node's: statistics always, the audit log unless off, the outbox when
    // the node syncs: by this command's UPSTREAM_URLS, or by what the serving node recorded at its
    // start (an import run without the node's full environment must not bypass sync).
    const sinks = [...(config.AUDIT_LOG ? [auditSink(new AuditLog(pool, log))] : []), ...((await writesSyncUpstream(pool, config)) ? [outboxSink()] : [])];
    const { importer } = buildWriters(config, pool, cache.cache, log, sinks, (prefix) => tenancy.isDisabled(prefix), changes, (keyId) => tenancy.isKeyValid(keyId));
    const print = progressPrinter(size);
    const job = await importer.importFile(actor, options.prefix, format, options.mode, file, (counts, bytesRead) => print(counts, bytesRead));
    print(job, size, true);
    // Invalidations Redis did not take: the command's retries end with it, so they are tried
    // once more now, and the operator told if running nodes may still serve what it replaced.
    const undelivered = await cache.cache.deliverPending(INVALIDATION_GRACE_MS);
    if (undelivered > 0) {
      process.stderr.write(`snode import: Redis did not take the cache invalidations of ${number(undelivered)} identifiers: running nodes may serve their previous answers for them until these expire (CACHE_MAX_TTL ${config.CACHE_MAX_TTL} s, NEGATIVE_CACHE_TTL ${config.NEGATIVE_CACHE_TTL} s). The data is written.\n`);
      process.exitCode = 1;
    }
    return job;
  } finally {
    await changes.close();
    await cache.close();
  }
}
