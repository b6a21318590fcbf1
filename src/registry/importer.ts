/**
 * Streaming imports. An upload is spooled to DATA_DIR/imports (so the job outlives the request),
 * then read line by line with back-pressure and written in chunks of CHUNK lines through the
 * batch writer, each chunk in one transaction with its rejected lines and the job's progress.
 * Memory stays flat whatever the file size; a job stopped by a shutdown or a crash resumes at the
 * first uncommitted line on the next start (no line is applied twice), or is reported failed when
 * its file is gone. One process runs a job at a time, holding a Postgres advisory lock on it.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
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
import { csvLines, ndjsonLines, type Line } from './import-readers.js';

/** Lines per chunk (one transaction each). */
export const CHUNK = 1000;

/** Who runs a job: the node (uploads) or the import command (its own file, with progress). */
interface Runner {
  fromCli: boolean;
  progress?: ImportProgress;
  /** Taken over by a live process's periodic look: a job whose file is not here is left to the process that has it. */
  lookingAround?: boolean;
}

export type ImportProgress = (job: Pick<jobs.ImportJob, 'linesRead' | 'written' | 'rejected'>, bytesRead: number) => void;

export class Importer {
  private queue: Promise<void> = Promise.resolve();
  private closing = false;
  /** This process, as the owner of the jobs it receives (import-jobs.ts: leases). */
  private readonly lease: jobs.Lease;
  /** Jobs received here and not started yet, whose lease this process renews. */
  private readonly held = new Set<string>();
  private leaseTimer: NodeJS.Timeout | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private lookWaiting = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly batches: BatchRegistry,
    private readonly cache: CacheInvalidation,
    private readonly checkItem: (operations: readonly unknown[]) => (i: number) => string | undefined,
    private readonly spoolDir: string,
    private readonly log: Logger,
    leaseSeconds: number,
    /** Whether an API key may still be used (the tenancy service knows). */
    private readonly isKeyValid: (keyId: string) => Promise<boolean>,
  ) {
    this.lease = { owner: randomUUID(), seconds: leaseSeconds };
  }

  /** Validates who may import under `prefix`, spools `body` and queues the job; resolves once spooled. */
  async upload(actor: Actor, prefix: string, format: ImportFormat, mode: ImportMode, body: Readable, maxBytes: number): Promise<jobs.ImportJob> {
    const { key, prefix: normalised } = this.authorise(actor, prefix);
    await mkdir(this.spoolDir, { recursive: true });
    const job = await jobs.createJob(this.pool, { actor: key, prefix: normalised, format, mode, source: 'upload', state: 'receiving', lease: this.lease, filePath: (id) => join(this.spoolDir, `${id}.${format}`) });
    this.hold(job.id);
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
      this.release(job.id);
      await jobs.setState(this.pool, job.id, 'failed', { bytes, error: `upload interrupted: ${(err as Error).message}`, from: 'receiving' });
      await rm(job.filePath, { force: true });
      throw err instanceof AppError ? err : errors.badRequest('UPLOAD_INTERRUPTED', `the upload did not complete: ${(err as Error).message}`);
    }
    if (await jobs.setState(this.pool, job.id, 'queued', { bytes, from: 'receiving' })) {
      this.enqueue(job.id);
    } else {
      // Taken over meanwhile (this process did not renew its lease in time): the job says how it ended.
      this.release(job.id);
      await rm(job.filePath, { force: true });
    }
    return (await jobs.getJob(this.pool, job.id))!;
  }

  /** A job as its owner, its enterprise, auditors and admins may see it. */
  async get(actor: Actor, id: string): Promise<jobs.ImportJob> {
    if (actor.kind !== 'key') throw errors.authenticationNeeded();
    const job = /^[0-9a-f-]{36}$/i.test(id) ? await jobs.getJob(this.pool, id) : undefined;
    // An enterprise key sees its enterprise's jobs under the prefixes it holds (all of the
    // enterprise's, or those it is restricted to: rejected lines hold raw input).
    const visible =
      job !== undefined &&
      (actor.role === 'admin' ||
        actor.role === 'auditor' ||
        job.apiKeyId === actor.keyId ||
        (actor.enterpriseId !== null && job.actor.enterpriseId === actor.enterpriseId && actor.prefixes.includes(job.prefix)));
    if (!visible) throw errors.notFound('IMPORT_NOT_FOUND', `no import ${id}`);
    return job;
  }

  rejections(id: string, afterLine: number, limit: number): Promise<jobs.Rejection[]> {
    return jobs.rejections(this.pool, id, afterLine, limit);
  }

  /** Starts a job for a file the caller names (the command line), and runs it to the end. */
  async importFile(actor: Actor, prefix: string, format: ImportFormat, mode: ImportMode, path: string, progress?: ImportProgress): Promise<jobs.ImportJob> {
    const { key, prefix: normalised } = this.authorise(actor, prefix);
    const { size } = await stat(path);
    const job = await jobs.createJob(this.pool, { actor: key, prefix: normalised, format, mode, source: 'cli', state: 'queued', lease: this.lease, filePath: () => path, bytes: size });
    await this.runLocked(job.id, { fromCli: true, progress });
    return (await jobs.getJob(this.pool, job.id))!;
  }

  /**
   * At start: picks up jobs no live process holds (a running job whose lock is free, a received or
   * queued one whose lease ran out). Uploads resume; others are reported failed.
   */
  resumeUnfinished(): void {
    this.takeOver(false);
    // Then again now and then: a job queued at a process that stopped is held by its lease for a
    // while after, and one running at a process that crashed is free only once its lock is.
    this.scanTimer ??= setInterval(() => this.takeOver(true), this.lease.seconds * 1000).unref();
  }

  private takeOver(lookingAround: boolean): void {
    // One look waiting at a time: behind a long job, looks would otherwise pile up in the queue.
    if (this.lookWaiting) return;
    this.lookWaiting = true;
    this.queue = this.queue.then(async () => {
      this.lookWaiting = false;
      if (this.closing) return;
      const unfinished = (await jobs.unfinishedJobs(this.pool)).filter((job) => !this.held.has(job.id));
      for (const job of unfinished) this.enqueue(job.id, lookingAround);
      // Queued after them: said once each was resumed, failed, or left to the process holding it.
      if (!lookingAround) this.queue = this.queue.then(() => this.log.info({ jobs: unfinished.length }, 'import: unfinished jobs found at start handled'));
    }).catch((err: unknown) => this.log.error({ err }, 'import: listing unfinished jobs failed'));
  }

  /** Stops between chunks; a running job resumes on the next start. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.leaseTimer);
    clearInterval(this.scanTimer);
    this.leaseTimer = undefined;
    this.scanTimer = undefined;
    await this.queue;
  }

  /** Keeps a received job this process's until it starts (its lease renewed meanwhile). */
  private hold(id: string): void {
    this.held.add(id);
    this.leaseTimer ??= setInterval(() => {
      if (this.held.size === 0) return;
      jobs.renewLeases(this.pool, this.lease).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'import: renewing job leases failed; will retry'));
    }, (this.lease.seconds * 1000) / 3).unref();
  }

  private release(id: string): void {
    this.held.delete(id);
  }

  /** The key that may import under `prefix`, and the prefix as stored (normalised, as lines' handles are). */
  private authorise(actor: Actor, prefix: string): { key: Extract<Actor, { kind: 'key' }>; prefix: string } {
    let handle;
    try {
      handle = parseHandle(`${prefix}/x`);
    } catch (err) {
      if (err instanceof InvalidHandleError) throw errors.invalidHandle(`invalid prefix: ${err.message}`);
      throw err;
    }
    return { key: this.batches.authoriseImport(actor, handle), prefix: handle.prefix };
  }

  private enqueue(id: string, lookingAround = false): void {
    this.queue = this.queue
      .then(() => (this.closing ? undefined : this.runLocked(id, { fromCli: false, lookingAround })))
      .catch((err: unknown) => this.log.error({ err, importId: id }, 'import failed'));
  }

  /** Runs a job while holding its advisory lock; a job another process holds is left alone. */
  private async runLocked(id: string, runner: Runner): Promise<void> {
    this.release(id); // run (or left to the process running it) from here: no longer waiting under its lease
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

  private async run(id: string, { fromCli, progress, lookingAround = false }: Runner): Promise<void> {
    const job = await jobs.getJob(this.pool, id);
    if (!job || job.state === 'done' || job.state === 'failed') return;
    if (job.state === 'receiving') {
      // Listed because its lease ran out: the process receiving it is gone.
      if (await jobs.setState(this.pool, id, 'failed', { error: 'the upload was interrupted before it completed (node stopped)', from: 'receiving' })) {
        await rm(job.filePath, { force: true });
      }
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
      if (lookingAround) return; // another process's file: that process resumes it when it starts again
      await jobs.setState(this.pool, id, 'failed', { error: `the file ${job.filePath} is gone (uploaded to another node, or removed)` });
      return;
    }
    if (!(await this.keyStillValid(job))) {
      // The spool first: a job that reads "failed" has no file left (and one that fails to be
      // marked so, the process stopping, finds its file gone on the next start and fails then).
      if (job.source === 'upload') await rm(job.filePath, { force: true });
      await jobs.setState(this.pool, id, 'failed', { error: keyGone(job.linesRead + 1) });
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
      // A failed job is never run again: its spooled upload is of no further use. Removed before
      // the job reads "failed", as above.
      if (job.source === 'upload') await rm(job.filePath, { force: true });
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
    // Why the file could not be read to its end (a CSV record too long to read): what was read
    // before is written, then the job fails with it.
    let unreadable: LineError | undefined;
    try {
      for await (const line of lines) {
        if (line.end) {
          unreadable = line.end;
          break;
        }
        if (job.format === 'csv' && columns === undefined) {
          // The first record is the header (blank lines may come before it); a bad one fails the job.
          if (line.error) throw new LineError('BAD_HEADER', `the header row (line ${line.lineNo}) is unreadable: ${line.error.message}`);
          columns = csvColumns(line.fields ?? []);
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
      if (unreadable) throw unreadable;
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
    // Normalised again: a job stored before prefixes were normalised at creation may hold one in lower case.
    const prefix = parseHandle(`${job.prefix}/x`).prefix;
    const context = { prefix, mode: job.mode };
    const operations: BatchOperation[] = [];
    const sources: Line[] = [];
    const rejected: jobs.Rejection[] = [];
    for (const line of lines) {
      try {
        if (line.error) throw line.error;
        if (job.format === 'ndjson' && line.text.trim() === '') continue;
        const op = job.format === 'csv' ? csvOperation(context, columns!, line.fields!) : ndjsonOperation(context, line.text);
        const parsed = parseHandle(op.handle);
        if (parsed.prefix !== prefix) throw new LineError('PREFIX_MISMATCH', `${parsed.handle} is not under the import's prefix ${prefix}`);
        operations.push(op);
        sources.push(line);
      } catch (err) {
        if (err instanceof LineError) rejected.push({ lineNo: line.lineNo, code: err.code, reason: err.message, line: line.text });
        else if (err instanceof InvalidHandleError) rejected.push({ lineNo: line.lineNo, code: 'INVALID_HANDLE', reason: `invalid handle: ${err.message}`, line: line.text });
        else throw err;
      }
    }
    const plan = operations.length > 0 ? this.batches.planOf(job.actor, operations, this.checkItem(operations)) : undefined;
    // Lines come in increasing order; the highest all the same, so progress never passes a line not written.
    let lastLine = 0;
    let firstLine = Number.POSITIVE_INFINITY;
    for (const line of lines) {
      if (line.lineNo > lastLine) lastLine = line.lineNo;
      if (line.lineNo < firstLine) firstLine = line.lineNo;
    }
    return { operations, sources, rejected, firstLine, lastLine, plan };
  }

  /**
   * Whether the API key that uploaded a job may still write: a job runs for a long time, resumes
   * after restarts and moves between processes, and must stop when its key is revoked or expires.
   * (The command line's jobs run as the command itself.)
   */
  private keyStillValid(job: jobs.ImportJob): Promise<boolean> {
    return job.source === 'upload' ? this.isKeyValid(job.apiKeyId) : Promise.resolve(true);
  }

  /** One chunk in one transaction: the batch, its rejections and the job's counters. */
  private async writeChunk(job: jobs.ImportJob, chunk: PreparedChunk): Promise<{ written: number; rejected: number }> {
    const { operations, sources, rejected, lastLine } = chunk;
    if (!(await this.keyStillValid(job))) throw new LineError('KEY_REVOKED', keyGone(chunk.firstLine));
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

const keyGone = (line: number): string => `the API key that uploaded this import is revoked or expired: nothing from line ${line} on was written`;

/** A chunk read and parsed, its batch checks running or done. */
interface PreparedChunk {
  operations: BatchOperation[];
  /** The line of each operation. */
  sources: Line[];
  /** Lines refused before the batch (unreadable, wrong prefix, ...). */
  rejected: jobs.Rejection[];
  /** The chunk's first line. */
  firstLine: number;
  /** The chunk's last line: the job's progress once it commits. */
  lastLine: number;
  plan: Promise<BatchPlan> | undefined;
}
