/**
 * Streaming imports. An upload is spooled to DATA_DIR/imports (so the job outlives the request),
 * then read line by line with back-pressure and written in chunks of CHUNK lines through the
 * batch writer, each chunk in one transaction with its rejected lines and the job's progress.
 * Memory stays flat whatever the file size; a job stopped by a shutdown or a crash resumes at the
 * first uncommitted line on the next start (no line is applied twice), or is reported failed when
 * its file is gone. One process runs a job at a time, holding a Postgres advisory lock on it.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { parse as parseCsv } from 'csv-parse';
import type pg from 'pg';
import { InvalidHandleError, parseHandle } from '../handle/handle.js';
import { AppError, errors } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import { withTransaction } from '../infra/postgres.js';
import type { CacheInvalidation } from '../resolver/resolver-cache.js';
import type { Actor } from '../tenancy/actor.js';
import { isRaceToRetry, RACE_ATTEMPTS, type BatchOperation, type BatchPlan, type BatchRegistry } from './batch.js';
import * as jobs from './import-jobs.js';
import { csvColumns, csvOperation, LineError, ndjsonOperation, type CsvColumns, type ImportFormat, type ImportMode } from './import-lines.js';

/** Lines per chunk (one transaction each). */
export const CHUNK = 1000;
/** Longest line read; a longer one is rejected whole. */
const MAX_LINE_BYTES = 1 << 20;

interface Line {
  lineNo: number;
  text: string;
  /** Set when the line could not even be read as a record (too long, bad CSV quoting). */
  error?: LineError;
  fields?: string[];
}

/** Who runs a job: the node (uploads) or the import command (its own file, with progress). */
interface Runner {
  fromCli: boolean;
  progress?: ImportProgress;
}

export type ImportProgress = (job: Pick<jobs.ImportJob, 'linesRead' | 'written' | 'rejected'>, bytesRead: number) => void;

export class Importer {
  private queue: Promise<void> = Promise.resolve();
  private closing = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly batches: BatchRegistry,
    private readonly cache: CacheInvalidation,
    private readonly checkItem: (operations: readonly unknown[]) => (i: number) => string | undefined,
    private readonly spoolDir: string,
    private readonly log: Logger,
  ) {}

  /** Validates who may import under `prefix`, spools `body` and queues the job; resolves once spooled. */
  async upload(actor: Actor, prefix: string, format: ImportFormat, mode: ImportMode, body: Readable, maxBytes: number): Promise<jobs.ImportJob> {
    const key = this.authorise(actor, prefix);
    await mkdir(this.spoolDir, { recursive: true });
    const job = await jobs.createJob(this.pool, { actor: key, prefix, format, mode, source: 'upload', state: 'receiving', filePath: (id) => join(this.spoolDir, `${id}.${format}`) });
    let bytes = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        if (bytes > maxBytes) done(new AppError('IMPORT_TOO_LARGE', `the file is larger than IMPORT_MAX_BYTES (${maxBytes} bytes)`, 413));
        else done(null, chunk);
      },
    });
    try {
      await pipeline(body, limit, createWriteStream(job.filePath));
    } catch (err) {
      await jobs.setState(this.pool, job.id, 'failed', { bytes, error: `upload interrupted: ${(err as Error).message}` });
      await rm(job.filePath, { force: true });
      throw err instanceof AppError ? err : errors.badRequest('UPLOAD_INTERRUPTED', `the upload did not complete: ${(err as Error).message}`);
    }
    await jobs.setState(this.pool, job.id, 'queued', { bytes });
    this.enqueue(job.id);
    return (await jobs.getJob(this.pool, job.id))!;
  }

  /** A job as its owner, its enterprise, auditors and admins may see it. */
  async get(actor: Actor, id: string): Promise<jobs.ImportJob> {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    const job = /^[0-9a-f-]{36}$/i.test(id) ? await jobs.getJob(this.pool, id) : undefined;
    const visible =
      job !== undefined &&
      (actor.role === 'admin' || actor.role === 'auditor' || job.apiKeyId === actor.keyId || (actor.enterpriseId !== null && job.actor.enterpriseId === actor.enterpriseId));
    if (!visible) throw errors.notFound('IMPORT_NOT_FOUND', `no import ${id}`);
    return job;
  }

  rejections(id: string, afterLine: number, limit: number): Promise<jobs.Rejection[]> {
    return jobs.rejections(this.pool, id, afterLine, limit);
  }

  /** Starts a job for a file the caller names (the command line), and runs it to the end. */
  async importFile(actor: Actor, prefix: string, format: ImportFormat, mode: ImportMode, path: string, progress?: ImportProgress): Promise<jobs.ImportJob> {
    const key = this.authorise(actor, prefix);
    const { size } = await stat(path);
    const job = await jobs.createJob(this.pool, { actor: key, prefix, format, mode, source: 'cli', state: 'queued', filePath: () => path, bytes: size });
    await this.runLocked(job.id, { fromCli: true, progress });
    return (await jobs.getJob(this.pool, job.id))!;
  }

  /** At start: picks up jobs no live process holds. Uploads resume; others are reported failed. */
  resumeUnfinished(): void {
    this.queue = this.queue.then(async () => {
      for (const job of await jobs.unfinishedJobs(this.pool)) this.enqueue(job.id);
    }).catch((err: unknown) => this.log.error({ err }, 'import: listing unfinished jobs failed'));
  }

  /** Stops between chunks; a running job resumes on the next start. */
  async close(): Promise<void> {
    this.closing = true;
    await this.queue;
  }

  private authorise(actor: Actor, prefix: string): Extract<Actor, { kind: 'key' }> {
    let handle;
    try {
      handle = parseHandle(`${prefix}/x`);
    } catch (err) {
      if (err instanceof InvalidHandleError) throw errors.invalidHandle(`invalid prefix: ${err.message}`);
      throw err;
    }
    return this.batches.authoriseImport(actor, handle);
  }

  private enqueue(id: string): void {
    this.queue = this.queue
      .then(() => (this.closing ? undefined : this.runLocked(id, { fromCli: false })))
      .catch((err: unknown) => this.log.error({ err, importId: id }, 'import failed'));
  }

  /** Runs a job while holding its advisory lock; a job another process holds is left alone. */
  private async runLocked(id: string, runner: Runner): Promise<void> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      const { rows } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtextextended('snode-import:' || $1, 0)) AS locked", [id]);
      if (!rows[0]!.locked) return;
      try {
        await this.run(id, runner);
      } finally {
        await client.query("SELECT pg_advisory_unlock(hashtextextended('snode-import:' || $1, 0))", [id]).catch(() => {
          broken = true;
        });
      }
    } finally {
      client.release(broken);
    }
  }

  private async run(id: string, { fromCli, progress }: Runner): Promise<void> {
    const job = await jobs.getJob(this.pool, id);
    if (!job || job.state === 'done' || job.state === 'failed') return;
    if (job.state === 'receiving') {
      await jobs.setState(this.pool, id, 'failed', { error: 'the upload was interrupted before it completed (node stopped)' });
      await rm(job.filePath, { force: true });
      return;
    }
    if (job.source === 'cli' && !fromCli) {
      // The node never reads a file the command line named: that command stopped mid-way.
      await jobs.setState(this.pool, id, 'failed', { error: `the import command stopped after line ${job.linesRead}; run it again (create mode rejects the lines already written, upsert rewrites them)` });
      return;
    }
    try {
      await stat(job.filePath);
    } catch {
      await jobs.setState(this.pool, id, 'failed', { error: `the file ${job.filePath} is gone (uploaded to another node, or removed)` });
      return;
    }
    await jobs.setState(this.pool, id, 'running');
    if (job.linesRead > 0) this.log.info({ importId: id, fromLine: job.linesRead + 1 }, 'import: resuming');
    try {
      const finished = await this.process(job, progress);
      if (!finished) return; // closing: resumes on the next start
      await jobs.setState(this.pool, id, 'done');
      const done = await jobs.getJob(this.pool, id);
      this.log.info({ importId: id, lines: done?.linesRead, written: done?.written, rejected: done?.rejected }, 'import done');
    } catch (err) {
      if (this.closing) return;
      await jobs.setState(this.pool, id, 'failed', { error: (err as Error).message });
      throw err;
    }
    if (job.source === 'upload') await rm(job.filePath, { force: true });
  }

  /**
   * Reads the file from the first uncommitted line; false when stopped by close(). Chunks are
   * written in order, one transaction at a time; the next chunk is read, parsed and checked while
   * the previous one's transaction runs, so the node's work and Postgres' overlap; at most two
   * chunks are in memory.
   */
  private async process(job: jobs.ImportJob, progress?: ImportProgress): Promise<boolean> {
    const counters = { linesRead: job.linesRead, written: job.written, rejected: job.rejected };
    const input = createReadStream(job.filePath, { highWaterMark: 1 << 16 });
    let bytesRead = 0;
    input.on('data', (chunk) => {
      bytesRead += chunk.length;
    });
    const lines = job.format === 'csv' ? csvLines(input) : ndjsonLines(input);
    let columns: CsvColumns | undefined;
    let chunk: Line[] = [];
    // The chunk being written, and how its write failed (noted at once: nothing awaits it yet).
    let writing: Promise<void> | undefined;
    let failure: { err: unknown } | undefined;
    let stopped = false;
    const settled = async (): Promise<void> => {
      await writing;
      writing = undefined;
      if (failure) throw failure.err;
    };
    /** Prepares the chunk gathered so far, waits for the previous write, then starts this one's. */
    const flush = async (): Promise<void> => {
      if (chunk.length === 0) return;
      const prepared = this.prepareChunk(job, columns, chunk);
      prepared.plan?.catch(() => undefined); // awaited by writeChunk; its failure is reported there
      chunk = [];
      await settled();
      if (this.closing) {
        stopped = true; // not written: the job resumes at this chunk
        return;
      }
      writing = this.writeChunk(job, prepared)
        .then((outcome) => {
          counters.linesRead = prepared.lastLine;
          counters.written += outcome.written;
          counters.rejected += outcome.rejected;
          progress?.(counters, bytesRead);
        })
        .catch((err: unknown) => {
          failure ??= { err };
        });
    };
    try {
      for await (const line of lines) {
        if (job.format === 'csv' && line.lineNo === 1 && columns === undefined) {
          columns = csvColumns(line.fields ?? []); // a bad header fails the whole job
          continue;
        }
        if (line.lineNo <= job.linesRead) continue;
        chunk.push(line);
        if (chunk.length >= CHUNK) {
          await flush();
          if (this.closing) return false;
        }
        if (failure) await settled();
      }
      await flush();
      await settled();
    } finally {
      // Never leave a chunk's transaction running behind the caller (close() waits for this).
      await writing;
      input.destroy();
      if (failure && this.closing) {
        this.log.warn({ importId: job.id, err: (failure.err as Error).message }, 'import: a chunk failed while the node stopped; the job resumes after its last committed chunk');
      }
    }
    return !stopped;
  }

  /** A chunk's lines as batch operations, and their checks started (writeChunk awaits them). */
  private prepareChunk(job: jobs.ImportJob, columns: CsvColumns | undefined, lines: readonly Line[]): PreparedChunk {
    const context = { prefix: job.prefix, mode: job.mode };
    const operations: BatchOperation[] = [];
    const sources: Line[] = [];
    const rejected: jobs.Rejection[] = [];
    for (const line of lines) {
      try {
        if (line.error) throw line.error;
        if (job.format === 'ndjson' && line.text.trim() === '') continue;
        const op = job.format === 'csv' ? csvOperation(context, columns!, line.fields!) : ndjsonOperation(context, line.text);
        const parsed = parseHandle(op.handle);
        if (parsed.prefix !== job.prefix) throw new LineError('PREFIX_MISMATCH', `${parsed.handle} is not under the import's prefix ${job.prefix}`);
        operations.push(op);
        sources.push(line);
      } catch (err) {
        if (err instanceof LineError) rejected.push({ lineNo: line.lineNo, code: err.code, reason: err.message, line: line.text });
        else if (err instanceof InvalidHandleError) rejected.push({ lineNo: line.lineNo, code: 'INVALID_HANDLE', reason: `invalid handle: ${err.message}`, line: line.text });
        else throw err;
      }
    }
    const plan = operations.length > 0 ? this.batches.planOf(job.actor, operations, this.checkItem(operations)) : undefined;
    return { operations, sources, rejected, lastLine: lines[lines.length - 1]!.lineNo, plan };
  }

  /** One chunk in one transaction: the batch, its rejections and the job's counters. */
  private async writeChunk(job: jobs.ImportJob, chunk: PreparedChunk): Promise<{ written: number; rejected: number }> {
    const { operations, sources, rejected, lastLine } = chunk;
    let plan = chunk.plan;
    for (let attempt = 1; ; attempt += 1) {
      try {
        const checked = await plan;
        const { written, failed, firstUse } = await withTransaction(this.pool, async (tx) => {
          const result = checked ? await this.batches.writePlanned(tx, 'partial', checked) : undefined;
          const failed = [...rejected];
          result?.body.results.forEach((r, i) => {
            if (r.responseCode !== 1) failed.push({ lineNo: sources[i]!.lineNo, code: r.code ?? 'REJECTED', reason: r.message ?? 'rejected', line: sources[i]!.text });
          });
          failed.sort((a, b) => a.lineNo - b.lineNo);
          const count = result ? result.body.counts.created + result.body.counts.updated : 0;
          await jobs.recordChunk(tx, job.id, lastLine, count, failed);
          return { written: result?.written ?? [], failed, firstUse: result?.firstUse ?? false };
        });
        if (written.length > 0) await this.cache.invalidate(written);
        if (firstUse) await this.batches.announceTemplates();
        return { written: written.length, rejected: failed.length };
      } catch (err) {
        if (!(isRaceToRetry(err) && attempt < RACE_ATTEMPTS)) throw err;
        // Checked again: a template the lines name may have changed meanwhile.
        plan = this.batches.planOf(job.actor, operations, this.checkItem(operations));
      }
    }
  }
}

/** A chunk read and parsed, its batch checks running or done. */
interface PreparedChunk {
  operations: BatchOperation[];
  /** The line of each operation. */
  sources: Line[];
  /** Lines refused before the batch (unreadable, wrong prefix, ...). */
  rejected: jobs.Rejection[];
  /** The chunk's last line: the job's progress once it commits. */
  lastLine: number;
  plan: Promise<BatchPlan> | undefined;
}

/** NDJSON lines, numbered from 1, read with back-pressure; an overlong line comes back as an error. */
async function* ndjsonLines(input: Readable): AsyncGenerator<Line> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let lineNo = 0;
  let skipping = false;
  for await (const chunk of input) {
    const text = rest + decoder.write(chunk as Buffer);
    const parts = text.split('\n');
    rest = parts.pop()!;
    for (const part of parts) {
      lineNo += 1;
      if (skipping) {
        skipping = false;
        yield { lineNo, text: part.slice(0, 200), error: new LineError('LINE_TOO_LONG', `the line is longer than ${MAX_LINE_BYTES} bytes`) };
        continue;
      }
      yield { lineNo, text: part.endsWith('\r') ? part.slice(0, -1) : part };
    }
    if (rest.length > MAX_LINE_BYTES) {
      skipping = true;
      rest = rest.slice(0, 200);
    }
  }
  rest += decoder.end();
  if (rest.length > 0 || skipping) {
    lineNo += 1;
    yield skipping ? { lineNo, text: rest.slice(0, 200), error: new LineError('LINE_TOO_LONG', `the line is longer than ${MAX_LINE_BYTES} bytes`) } : { lineNo, text: rest };
  }
}

/** CSV records (the header first), numbered by the line they end on; unreadable records as errors. */
async function* csvLines(input: Readable): AsyncGenerator<Line> {
  const skipped: Line[] = [];
  const parser = parseCsv({ bom: true, relax_column_count: true, skip_empty_lines: true, info: true, raw: true, skip_records_with_error: true, max_record_size: MAX_LINE_BYTES });
  parser.on('skip', (err: Error & { lines?: number; raw?: string }) => {
    skipped.push({ lineNo: err.lines ?? 0, text: String(err.raw ?? '').slice(0, 2000), error: new LineError('MALFORMED_LINE', `unreadable CSV: ${err.message}`) });
  });
  input.pipe(parser);
  input.on('error', (err) => parser.destroy(err));
  for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number }; raw: string }>) {
    while (skipped.length > 0) yield skipped.shift()!;
    yield { lineNo: item.info.lines, text: item.raw.replace(/\r?\n$/, ''), fields: item.record };
  }
  while (skipped.length > 0) yield skipped.shift()!;
}
