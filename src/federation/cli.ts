/** What `snode federation ...` and `snode admin register-node` do. */
import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { AuditLog, NO_AUDIT } from '../audit/service.js';
import type { Config } from '../config.js';
import { errors } from '../infra/errors.js';
import type { Logger } from '../infra/logger.js';
import { CLI_CONTEXT } from '../tenancy/service.js';
import { HttpPools } from './http-pools.js';
import { upstreamUrls } from './index.js';
import { keyFile, loadOrCreateNodeKey } from './node-key.js';
import * as outbox from './outbox-repository.js';
import { SENDER_LOCK } from './sender.js';
import type { KeyAlgorithm } from './signing.js';
import { TopLevelService } from './top-level/service.js';
import { UpstreamClient } from './upstream-client.js';
import { decode, type PrefixDigest, type VerifyAnswer } from './wire.js';

export async function registerNode(pool: pg.Pool, config: Config, log: Logger, o: { id: string; prefix: string; publicKey: string; algorithm?: KeyAlgorithm; url?: string }) {
  let pem: string;
  try {
    pem = await readFile(o.publicKey, 'utf8');
  } catch (err) {
    throw errors.badRequest('INVALID_PUBLIC_KEY', `cannot read ${o.publicKey}: ${(err as Error).message}`);
  }
  const service = new TopLevelService(pool, { timestampWindowMs: config.FEDERATION_TIMESTAMP_WINDOW_MS, downAfterMs: config.NODE_DOWN_AFTER_MS }, log);
  const trail = config.AUDIT_LOG ? new AuditLog(pool, log) : NO_AUDIT;
  const node = await service.registerNode({ nodeId: o.id, nodePrefix: o.prefix, publicKeyPem: pem, algorithm: o.algorithm, baseUrl: o.url }, { trail, context: CLI_CONTEXT });
  return { nodeId: node.nodeId, nodePrefix: node.nodePrefix, algorithm: node.algorithm, baseUrl: node.baseUrl, registeredAt: node.registeredAt };
}

export async function publicKey(config: Config, log: Logger): Promise<string> {
  const key = await loadOrCreateNodeKey(config, log);
  return `# ${key.algorithm} public key of node ${config.NODE_ID} (${keyFile(config)})\n${key.publicKeyPem}`;
}

function client(config: Config, log: Logger, key: Awaited<ReturnType<typeof loadOrCreateNodeKey>>, pools: HttpPools): UpstreamClient {
  const urls = upstreamUrls(config);
  if (urls.length === 0) throw errors.badRequest('NO_UPSTREAM', 'UPSTREAM_URLS is empty: this node does not federate');
  return new UpstreamClient(pools, { urls, nodeId: config.NODE_ID, key, failoverAfter: 1, primaryRetryMs: config.UPSTREAM_PRIMARY_RETRY_MS }, log);
}

export interface VerifyReport {
  inSync: boolean;
  drift: boolean;
  backlog: number;
  ackedSeq: { node: number; topLevel: number };
  prefixes: Array<{ prefix: string; node: { count: number; digest: string } | null; escrow: { count: number; digest: string } | null; match: boolean }>;
}

/** The top-level node's view of this node (its escrow digests, its acknowledged position): one signed verify request. */
async function askTopLevel(config: Config, log: Logger): Promise<VerifyAnswer> {
  const pools = new HttpPools({ connectTimeoutMs: config.UPSTREAM_CONNECT_TIMEOUT_MS, headersTimeoutMs: config.UPSTREAM_HEADERS_TIMEOUT_MS, bodyTimeoutMs: config.UPSTREAM_BODY_TIMEOUT_MS });
  try {
    const upstream = client(config, log, await loadOrCreateNodeKey(config, log), pools);
    return decode('VerifyAnswer', (await tryEach(upstream, config)).body);
  } finally {
    await pools.close();
  }
}

/** Per-prefix counts and digests here against the top-level node's escrow copy. */
export async function verify(pool: pg.Pool, config: Config, log: Logger): Promise<VerifyReport> {
  const [local, backlog, answer] = await Promise.all([outbox.localDigests(pool), outbox.backlog(pool), askTopLevel(config, log)]);
  const byPrefix = new Map<string, { node: PrefixDigest | null; escrow: PrefixDigest | null }>();
  for (const d of local) byPrefix.set(d.prefix, { node: d, escrow: null });
  for (const d of answer.prefixes) byPrefix.set(d.prefix, { node: byPrefix.get(d.prefix)?.node ?? null, escrow: d });
  const prefixes = [...byPrefix.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([prefix, { node, escrow }]) => ({
    prefix,
    node: node ? { count: node.count, digest: node.digest } : null,
    escrow: escrow ? { count: escrow.count, digest: escrow.digest } : null,
    match: node !== null && escrow !== null && node.count === escrow.count && node.digest === escrow.digest,
  }));
  const drift = prefixes.some((p) => !p.match);
  return { inSync: !drift && backlog.backlog === 0, drift, backlog: backlog.backlog, ackedSeq: { node: backlog.ackedSeq, topLevel: answer.ackedSeq }, prefixes };
}

/** One signed verify request, trying each endpoint in order (the CLI runs once; no failover state). */
async function tryEach(upstream: UpstreamClient, config: Config) {
  let last: unknown;
  for (let i = 0; i < upstreamUrls(config).length; i += 1) {
    try {
      return await upstream.call('POST', '/federation/v1/verify');
    } catch (err) {
      last = err;
    }
  }
  throw errors.unavailable(`no top-level endpoint answered: ${(last as Error).message}`);
}

/**
 * A full snapshot into the outbox. When the top-level node's position differs from this node's
 * (a database restored from an older backup, a reinstall under the same NODE_ID, a top-level node
 * restored behind this one), sequence numbers would be skipped as already applied or refused as a
 * gap: the stream is then realigned to restart after the top-level's position, which needs the
 * sender stopped (its session lock free), since a batch in flight would acknowledge past it.
 */
export async function resync(pool: pg.Pool, config: Config, log: Logger): Promise<{ firstSeq: number; lastSeq: number; records: number; realigned?: { from: number; to: number }; note: string }> {
  // Without the top-level node's position a restored node cannot be realigned, and a node that
  // does not federate would only grow its outbox.
  if (upstreamUrls(config).length === 0) throw errors.badRequest('NO_UPSTREAM', 'UPSTREAM_URLS is empty: set it as the node has it (resync asks the top-level node for its position)');
  const lock = await pool.connect();
  let locked = false;
  try {
    locked = (await lock.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [SENDER_LOCK])).rows[0]!.ok;
    let theirs: number | undefined;
    let unreachable: string | undefined;
    try {
      theirs = (await askTopLevel(config, log)).ackedSeq;
    } catch (err) {
      unreachable = (err as Error).message;
    }
    const ours = (await outbox.readState(pool)).ackedSeq;
    if (theirs !== undefined && theirs !== ours && !locked) {
      throw errors.conflict(
        'SENDER_RUNNING',
        `the top-level node has acknowledged changes up to ${theirs}, this node up to ${ours}: the stream must be realigned, which needs this node's sender stopped. Stop the node (every process on this database), run "snode federation resync" again, then start it.`,
      );
    }
    const queued = await outbox.enqueueSnapshot(pool, theirs);
    const sent = locked ? 'the node sends it once started' : 'the running node sends it';
    const note = queued.realigned
      ? `positions realigned (this node had ${queued.realigned.from}, the top-level node ${queued.realigned.to}); the snapshot is in the outbox and ${sent} (watch GET /api/federation/status or run "snode federation verify")`
      : `the snapshot is in the outbox; ${sent} (watch GET /api/federation/status or run "snode federation verify")${unreachable ? `; the top-level node could not be asked for its position (${unreachable}): if this node's database was restored, run resync again once it answers` : ''}`;
    return { ...queued, note };
  } finally {
    if (locked) await lock.query('SELECT pg_advisory_unlock($1)', [SENDER_LOCK]).catch(() => undefined);
    lock.release();
  }
}
