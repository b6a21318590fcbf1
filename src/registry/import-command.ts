/** `snode import FILE --prefix P`: the streaming import, run by the command line on its own file. */
import { stat } from 'node:fs/promises';
import type { Config } from '../config.js';
import { AuditLog } from '../audit/service.js';
import { auditSink } from '../audit/sink.js';
import { upstreamUrls } from '../federation/index.js';
import { outboxSink } from '../federation/outbox-sink.js';
import { createLogger } from '../infra/logger.js';
import { openCache, openDatabase } from '../server.js';
import type { Actor } from '../tenancy/actor.js';
import { disabledPrefixes } from '../tenancy/repository.js';
import type { ImportJob } from './import-jobs.js';
import type { ImportFormat, ImportMode } from './import-lines.js';
import { buildWriters } from './writers.js';

export interface ImportCommandOptions {
  prefix: string;
  format?: ImportFormat;
  mode: ImportMode;
}

const number = (n: number): string => n.toLocaleString('en');

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

/** Runs the import; the job (with its id, for GET /api/imports/{id}) is the result. */
export async function runImportCommand(config: Config, actor: Actor, file: string, options: ImportCommandOptions): Promise<ImportJob> {
  const format: ImportFormat = options.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'ndjson');
  const log = createLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', { nodeId: config.NODE_ID }, true);
  const { size } = await stat(file);
  const database = await openDatabase(config, log);
  try {
    const cache = await openCache(config, log);
    try {
      // The same sinks as the node's: statistics always, the audit log unless off, the outbox when the node syncs.
      // Disabled prefixes as they are when the command starts.
      const disabled = new Set(await disabledPrefixes(database.pool));
      const sinks = [...(config.AUDIT_LOG ? [auditSink(new AuditLog(database.pool, log))] : []), ...(upstreamUrls(config).length > 0 ? [outboxSink()] : [])];
      const { importer } = buildWriters(config, database.pool, cache.cache, log, sinks, (prefix) => disabled.has(prefix));
      const print = progressPrinter(size);
      const job = await importer.importFile(actor, options.prefix, format, options.mode, file, (counts, bytesRead) => print(counts, bytesRead));
      print(job, size, true);
      return job;
    } finally {
      await cache.close();
    }
  } finally {
    await database.close();
  }
}
