/**
 * The top-level role: authenticates signed requests, homes prefixes, stores sync batches into the
 * escrow copy exactly once, records heartbeats, and says which nodes are up.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { AuditContext } from '../../audit/entry.js';
import type { AuditTrail } from '../../audit/service.js';
import { InvalidHandleError, isPrefixUnder, normalisePrefix, parseHandle } from '../../handle/handle.js';
import { AppError, errors } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import { withTransaction } from '../../infra/postgres.js';
import { canonical, HEADER_NODE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, parsePublicKey, type KeyAlgorithm } from '../signing.js';
import { verifySignature } from '../signing.js';
import { Op, type NodeIdentity, type NodeStatus, type PrefixLookupAnswer, type PrefixRegistration, type SyncAck, type SyncBatch, type VerifyAnswer } from '../wire.js';
import * as repo from './repository.js';

const isHttpUrl = (text: string): boolean => {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
};

export type NodeState = 'up' | 'down' | 'unknown';

const unauthorised = (code: string, message: string) => new AppError(code, message, 401);

/** Every ancestor of a prefix, itself first: 88.118.8 -> 88.118.8, 88.118, 88. */
export function ancestors(prefix: string): string[] {
  const segments = prefix.split('.');
  return segments.map((_, i) => segments.slice(0, segments.length - i).join('.'));
}

export interface TopLevelOptions {
  timestampWindowMs: number;
  downAfterMs: number;
}

export class TopLevelService {
  private monitorTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: TopLevelOptions,
    private readonly log: Logger,
  ) {}

  stateOf(node: repo.NodeRow, now = Date.now()): NodeState {
    if (!node.lastHeartbeatAt) return 'unknown';
    return now - node.lastHeartbeatAt.getTime() > this.options.downAfterMs ? 'down' : 'up';
  }

  /**
   * `snode admin register-node`: a node id, its allocated node prefix and its public key; again
   * (same id and prefix) to rotate the key. Each is an audit entry when `audit` is given.
   */
  async registerNode(
    input: { nodeId: string; nodePrefix: string; publicKeyPem: string; algorithm?: KeyAlgorithm; baseUrl?: string },
    audit?: { trail: AuditTrail; context: AuditContext },
  ): Promise<repo.NodeRow> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(input.nodeId)) throw errors.badRequest('INVALID_NODE_ID', `node id ${JSON.stringify(input.nodeId)} is not 1-64 letters, digits, '.', '_' or '-'`);
    let nodePrefix: string;
    try {
      nodePrefix = normalisePrefix(input.nodePrefix);
    } catch (err) {
      if (err instanceof InvalidHandleError) throw errors.badRequest('INVALID_PREFIX', err.message);
      throw err;
    }
    let key: { algorithm: KeyAlgorithm; pem: string };
    try {
      key = parsePublicKey(input.publicKeyPem, input.algorithm);
    } catch (err) {
      throw errors.badRequest('INVALID_PUBLIC_KEY', (err as Error).message);
    }
    if (input.baseUrl && !isHttpUrl(input.baseUrl)) throw errors.badRequest('INVALID_URL', `--url ${JSON.stringify(input.baseUrl)} is not an http:// or https:// URL`);
    return withTransaction(this.pool, async (tx) => {
      const before = await repo.getNode(tx, input.nodeId, true);
      // A node's prefix is its allocation: moving it would leave the old one homed here too.
      if (before && before.nodePrefix !== nodePrefix) {
        throw errors.conflict('NODE_PREFIX_CHANGE', `node ${input.nodeId} is registered with node prefix ${before.nodePrefix}, not ${nodePrefix}: register again with --prefix ${before.nodePrefix} to rotate its key; a node under another prefix registers under another id`);
      }
      let node: repo.NodeRow;
      try {
        node = await repo.upsertNode(tx, { nodeId: input.nodeId, nodePrefix, algorithm: key.algorithm, publicKey: key.pem, baseUrl: input.baseUrl ?? '' });
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw errors.conflict('PREFIX_TAKEN', `node prefix ${nodePrefix} belongs to another node`);
        throw err;
      }
      const taken = await repo.homePrefixes(tx, node.nodeId, [nodePrefix]);
      if (taken.length > 0) throw errors.conflict('PREFIX_TAKEN', `prefix ${nodePrefix} is homed at node ${taken[0]!.nodeId}`);
      const state = (n: repo.NodeRow) => ({ nodePrefix: n.nodePrefix, algorithm: n.algorithm, publicKey: n.publicKey, baseUrl: n.baseUrl });
      // A re-run that changes nothing (compose's setup at every upgrade) is not an event.
      const unchanged = before !== undefined && JSON.stringify(state(before)) === JSON.stringify(state(node));
      if (!unchanged) await audit?.trail.append(tx, [{
        context: audit.context,
        action: !before ? 'node.register' : before.publicKey !== node.publicKey ? 'node.rotate-key' : 'node.update',
        target: node.nodeId,
        before: before ? state(before) : null,
        after: state(node),
        detail: { nodePrefix, algorithm: key.algorithm },
      }]);
      this.log.info({ nodeId: node.nodeId, nodePrefix, algorithm: key.algorithm }, 'federation: node registered');
      return node;
    });
  }

  /**
   * Before the body is read: the signature headers are present, the node is known and the
   * timestamp is inside the window (so nobody unknown can make the node read a large body).
   */
  async precheck(headers: Record<string, string | string[] | undefined>): Promise<repo.NodeRow> {
    const nodeId = headers[HEADER_NODE];
    const timestamp = headers[HEADER_TIMESTAMP];
    const signature = headers[HEADER_SIGNATURE];
    const nonce = headers[HEADER_NONCE];
    if (typeof nodeId !== 'string' || typeof timestamp !== 'string' || typeof signature !== 'string' || typeof nonce !== 'string') {
      throw unauthorised('SIGNATURE_MISSING', `federation requests carry ${HEADER_NODE}, ${HEADER_TIMESTAMP}, ${HEADER_NONCE} and ${HEADER_SIGNATURE}`);
    }
    const node = await repo.getNode(this.pool, nodeId);
    if (!node) throw unauthorised('UNKNOWN_NODE', `node ${nodeId} is not registered here (snode admin register-node)`);
    const at = /^\d{1,15}$/.test(timestamp) ? Number(timestamp) : NaN;
    if (!Number.isFinite(at) || Math.abs(Date.now() - at) > this.options.timestampWindowMs) {
      throw unauthorised('STALE_TIMESTAMP', `timestamp ${timestamp} is outside the ${this.options.timestampWindowMs} ms window`);
    }
    return node;
  }

  /**
   * Checks a federation request's signature over method, path, headers and body. Refused: a
   * wrong signature (tampered body, wrong key) and a signature seen before (a replay).
   */
  async authenticate(node: repo.NodeRow, method: string, path: string, headers: Record<string, string | string[] | undefined>, body: Buffer | undefined): Promise<repo.NodeRow> {
    const sig = Buffer.from(String(headers[HEADER_SIGNATURE]), 'base64');
    const data = canonical(method, path, String(headers[HEADER_TIMESTAMP]), node.nodeId, String(headers[HEADER_NONCE]), body);
    if (sig.length === 0 || !verifySignature(node.algorithm, node.publicKey, data, sig)) {
      throw unauthorised('BAD_SIGNATURE', 'the signature does not match the request and the node\'s registered key');
    }
    if (!(await repo.rememberSignature(this.pool, createHash('sha256').update(sig).digest()))) {
      throw errors.conflict('REPLAYED_REQUEST', 'this signed request was received before');
    }
    return node;
  }

  async registerPrefixes(node: repo.NodeRow, registration: PrefixRegistration): Promise<string[]> {
    if (registration.node?.nodeId !== node.nodeId) throw errors.badRequest('NODE_MISMATCH', 'the registration names another node than the signer');
    const prefixes = new Set<string>();
    for (const input of registration.prefixes) {
      let prefix: string;
      try {
        prefix = normalisePrefix(input);
      } catch (err) {
        if (err instanceof InvalidHandleError) throw errors.badRequest('INVALID_PREFIX', `${input}: ${err.message}`);
        throw err;
      }
      if (!isPrefixUnder(prefix, node.nodePrefix) || prefix === node.nodePrefix) {
        throw errors.forbidden('PREFIX_OUTSIDE_NODE', `prefix ${prefix} is not below node ${node.nodeId}'s prefix ${node.nodePrefix}`);
      }
      prefixes.add(prefix);
    }
    const baseUrl = registration.node.baseUrl;
    if (baseUrl && !/^https?:\/\/[^\s]+$/.test(baseUrl)) throw errors.badRequest('INVALID_BASE_URL', `base URL ${baseUrl} is not http(s)`);
    return withTransaction(this.pool, async (tx) => {
      await repo.setNodeAddress(tx, node.nodeId, baseUrl, registration.node.version);
      const taken = await repo.homePrefixes(tx, node.nodeId, [...prefixes]);
      if (taken.length > 0) throw errors.conflict('PREFIX_TAKEN', `prefix ${taken[0]!.prefix} is homed at node ${taken[0]!.nodeId}`);
      const homed = await repo.nodePrefixes(tx, node.nodeId);
      return [node.nodePrefix, ...homed.filter((p) => p !== node.nodePrefix)];
    });
  }

  /** Where a prefix (or its nearest registered ancestor) is homed; undefined when nowhere. */
  async home(prefix: string): Promise<{ homedPrefix: string; node: repo.NodeRow; state: NodeState } | undefined> {
    const found = await repo.findHome(this.pool, ancestors(prefix));
    return found ? { homedPrefix: found.prefix, node: found.node, state: this.stateOf(found.node) } : undefined;
  }

  async lookup(prefixInput: string): Promise<PrefixLookupAnswer> {
    let prefix: string;
    try {
      prefix = normalisePrefix(prefixInput);
    } catch (err) {
      if (err instanceof InvalidHandleError) throw errors.badRequest('INVALID_PREFIX', err.message);
      throw err;
    }
    const home = await this.home(prefix);
    if (!home) throw errors.notFound('PREFIX_NOT_HOMED', `no node homes prefix ${prefix}`);
    return { prefix, homedPrefix: home.homedPrefix, node: identity(home.node), state: home.state };
  }

  /**
   * Stores a batch exactly once per (node, seq): events at or below the node's acked sequence are
   * skipped, a batch starting past acked + 1 is refused (409 with the acked sequence, so the
   * sender resumes from there), and the rest is applied in order in one transaction.
   */
  async sync(node: repo.NodeRow, batch: SyncBatch): Promise<{ status: 200 | 409; ack: SyncAck }> {
    if (batch.nodeId !== node.nodeId) throw errors.badRequest('NODE_MISMATCH', 'the batch names another node than the signer');
    const count = batch.lastSeq - batch.firstSeq + 1;
    if (batch.firstSeq < 1 || count !== batch.events.length || batch.events.some((e, i) => e.seq !== batch.firstSeq + i)) {
      throw errors.badRequest('INVALID_BATCH', `a batch holds consecutive events first_seq..last_seq (${batch.firstSeq}..${batch.lastSeq}, ${batch.events.length} events given)`);
    }
    const checked = batch.events.map((e) => this.checkEvent(node, e));
    return withTransaction(this.pool, async (tx) => {
      const current = (await repo.getNode(tx, node.nodeId, true))!;
      const acked = current.ackedSeq;
      if (batch.firstSeq > acked + 1) return { status: 409 as const, ack: { ackedSeq: acked, stored: 0 } };
      const fresh = checked.filter((e) => e.seq > acked);
      // Within a run between snapshot ends, the last event per handle decides its escrow row.
      let run = new Map<string, (typeof fresh)[number]>();
      const flush = async () => {
        const events = [...run.values()];
        run = new Map();
        await repo.upsertEscrow(tx, node.nodeId, events.filter((e) => e.op === Op.UPSERT));
        await repo.deleteEscrow(tx, node.nodeId, events.filter((e) => e.op === Op.DELETE));
      };
      for (const e of fresh) {
        if (e.op === Op.SNAPSHOT_END) {
          await flush();
          const purged = await repo.purgeBefore(tx, node.nodeId, e.snapshotStart);
          this.log.info({ nodeId: node.nodeId, snapshotStart: e.snapshotStart, purged }, 'federation: snapshot applied to the escrow copy');
        } else {
          run.set(`${e.prefix}/${e.suffix}`, e);
        }
      }
      await flush();
      if (fresh.length > 0) await repo.setAcked(tx, node.nodeId, batch.lastSeq);
      return { status: 200 as const, ack: { ackedSeq: Math.max(acked, batch.lastSeq), stored: fresh.length } };
    });
  }

  private checkEvent(node: repo.NodeRow, e: SyncBatch['events'][number]) {
    const bad = (message: string) => errors.badRequest('INVALID_EVENT', `event ${e.seq}: ${message}`);
    if (e.op === Op.SNAPSHOT_END) {
      if (e.snapshotStart < 1 || e.snapshotStart > e.seq) throw bad('snapshot_start must be between 1 and the event\'s seq');
      return { seq: e.seq, op: e.op, prefix: '', suffix: '', version: 0, valuesJson: '', snapshotStart: e.snapshotStart };
    }
    if (e.op !== Op.UPSERT && e.op !== Op.DELETE) throw bad(`unknown op ${e.op}`);
    let handle;
    try {
      handle = parseHandle(`${e.prefix}/${e.suffix}`);
    } catch (err) {
      throw bad((err as Error).message);
    }
    if (handle.prefix !== e.prefix || handle.suffix !== e.suffix) throw bad('prefix must be upper-cased');
    if (!isPrefixUnder(handle.prefix, node.nodePrefix)) throw errors.forbidden('PREFIX_OUTSIDE_NODE', `event ${e.seq}: prefix ${handle.prefix} is not below node ${node.nodeId}'s prefix ${node.nodePrefix}`);
    if (e.version < 1) throw bad('version must be at least 1');
    if (e.op === Op.UPSERT) {
      let values: unknown;
      try {
        values = JSON.parse(e.valuesJson);
      } catch {
        throw bad('values_json is not JSON');
      }
      if (!Array.isArray(values)) throw bad('values_json is not an array of values');
    }
    return { seq: e.seq, op: e.op, prefix: e.prefix, suffix: e.suffix, version: e.version, valuesJson: e.valuesJson, snapshotStart: 0 };
  }

  async heartbeat(node: repo.NodeRow, status: NodeStatus): Promise<number> {
    if (status.nodeId !== node.nodeId) throw errors.badRequest('NODE_MISMATCH', 'the status names another node than the signer');
    const wasUp = this.stateOf(node) === 'up';
    const acked = await repo.recordHeartbeat(this.pool, node.nodeId, status);
    if (!wasUp) await this.checkStates();
    return acked;
  }

  async verify(node: repo.NodeRow): Promise<VerifyAnswer> {
    const [prefixes, current] = await Promise.all([repo.escrowDigests(this.pool, node.nodeId), repo.getNode(this.pool, node.nodeId)]);
    return { prefixes, ackedSeq: current?.ackedSeq ?? 0 };
  }

  async nodes() {
    const now = Date.now();
    return (await repo.listNodes(this.pool)).map((n) => ({
      nodeId: n.nodeId,
      nodePrefix: n.nodePrefix,
      algorithm: n.algorithm,
      baseUrl: n.baseUrl,
      version: n.version,
      state: this.stateOf(n, now),
      lastHeartbeatAt: n.lastHeartbeatAt?.toISOString() ?? null,
      ackedSeq: n.ackedSeq,
      backlog: n.lastStatus?.outboxBacklog ?? null,
      oldestUnsentAgeS: n.lastStatus?.oldestUnsentAgeS ?? null,
      identifiers: n.lastStatus?.identifiers ?? null,
      registrationsToday: n.lastStatus?.registrationsToday ?? null,
      resolutionsToday: n.lastStatus?.resolutionsToday ?? null,
      registeredAt: n.registeredAt,
    }));
  }

  /** Logs nodes going down and coming back (INFO), once each, whichever process sees it first. */
  async checkStates(): Promise<void> {
    const changed = await repo.updateReportedStates(this.pool, this.options.downAfterMs);
    for (const c of changed) {
      if (c.state === 'down') this.log.warn({ nodeId: c.nodeId }, 'federation: node down; its prefixes are answered from the escrow copy');
      else if (c.state === 'up') this.log.info({ nodeId: c.nodeId }, 'federation: node up');
    }
  }

  startMonitor(): void {
    const every = Math.max(100, Math.min(1000, Math.floor(this.options.downAfterMs / 4)));
    let ticks = 0;
    this.monitorTimer = setInterval(() => {
      ticks += 1;
      void this.checkStates().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'federation monitor: state check failed'));
      if (ticks % 60 === 0) void repo.forgetSignatures(this.pool, 2 * this.options.timestampWindowMs).catch(() => undefined);
    }, every);
    this.monitorTimer.unref();
  }

  stopMonitor(): void {
    clearInterval(this.monitorTimer);
  }

  async escrowRecord(nodeId: string, prefix: string, suffix: string) {
    return repo.findEscrow(this.pool, nodeId, prefix, suffix);
  }
}

export function identity(node: repo.NodeRow): NodeIdentity {
  return { nodeId: node.nodeId, nodePrefix: node.nodePrefix, baseUrl: node.baseUrl, version: node.version };
}
