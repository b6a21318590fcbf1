/** SQL of the top-level role: known nodes, prefix homes, escrow copies, seen signatures. */
import type { HandleValue } from '../../handle/values.js';
import type { Db, Tx } from '../../infra/postgres.js';
import { DIGEST_SQL } from '../outbox-repository.js';
import type { KeyAlgorithm } from '../signing.js';
import type { NodeStatus, PrefixDigest } from '../wire.js';

export interface NodeRow {
  nodeId: string;
  nodePrefix: string;
  algorithm: KeyAlgorithm;
  publicKey: string;
  baseUrl: string;
  version: string;
  ackedSeq: number;
  registeredAt: string;
  lastHeartbeatAt: Date | null;
  lastStatus: NodeStatus | null;
  reportedState: string;
}

interface RawNode {
  node_id: string;
  node_prefix: string;
  algorithm: KeyAlgorithm;
  public_key: string;
  base_url: string;
  version: string;
  acked_seq: string;
  registered_at: Date;
  last_heartbeat_at: Date | null;
  last_status: NodeStatus | null;
  reported_state: string;
}

const toNode = (r: RawNode): NodeRow => ({
  nodeId: r.node_id,
  nodePrefix: r.node_prefix,
  algorithm: r.algorithm,
  publicKey: r.public_key,
  baseUrl: r.base_url,
  version: r.version,
  ackedSeq: Number(r.acked_seq),
  registeredAt: r.registered_at.toISOString(),
  lastHeartbeatAt: r.last_heartbeat_at,
  lastStatus: r.last_status,
  reportedState: r.reported_state,
});

/** Creates a node or replaces its key (key rotation); the node prefix becomes homed at it. */
export async function upsertNode(tx: Tx, node: { nodeId: string; nodePrefix: string; algorithm: KeyAlgorithm; publicKey: string; baseUrl: string }): Promise<NodeRow> {
  const { rows } = await tx.query<RawNode>(
    `INSERT INTO federation_nodes (node_id, node_prefix, algorithm, public_key, base_url)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (node_id) DO UPDATE SET node_prefix = EXCLUDED.node_prefix, algorithm = EXCLUDED.algorithm,
       public_key = EXCLUDED.public_key, base_url = CASE WHEN EXCLUDED.base_url = '' THEN federation_nodes.base_url ELSE EXCLUDED.base_url END
     RETURNING *`,
    [node.nodeId, node.nodePrefix, node.algorithm, node.publicKey, node.baseUrl],
  );
  return toNode(rows[0]!);
}

export async function getNode(db: Db, nodeId: string, lock = false): Promise<NodeRow | undefined> {
  const { rows } = await db.query<RawNode>(`SELECT * FROM federation_nodes WHERE node_id = $1${lock ? ' FOR UPDATE' : ''}`, [nodeId]);
  return rows[0] ? toNode(rows[0]) : undefined;
}

export async function listNodes(db: Db): Promise<NodeRow[]> {
  const { rows } = await db.query<RawNode>('SELECT * FROM federation_nodes ORDER BY node_id');
  return rows.map(toNode);
}

/** Homes the prefixes at the node; returns the owners of those already homed elsewhere. */
export async function homePrefixes(tx: Tx, nodeId: string, prefixes: readonly string[]): Promise<Array<{ prefix: string; nodeId: string }>> {
  await tx.query(
    'INSERT INTO federation_prefixes (prefix, node_id) SELECT unnest($1::text[]), $2 ON CONFLICT (prefix) DO NOTHING',
    [prefixes, nodeId],
  );
  const { rows } = await tx.query<{ prefix: string; node_id: string }>(
    'SELECT prefix, node_id FROM federation_prefixes WHERE prefix = ANY($1::text[]) AND node_id <> $2',
    [prefixes, nodeId],
  );
  return rows.map((r) => ({ prefix: r.prefix, nodeId: r.node_id }));
}

export async function nodePrefixes(db: Db, nodeId: string): Promise<string[]> {
  const { rows } = await db.query<{ prefix: string }>('SELECT prefix FROM federation_prefixes WHERE node_id = $1 ORDER BY prefix', [nodeId]);
  return rows.map((r) => r.prefix);
}

export async function setNodeAddress(tx: Tx, nodeId: string, baseUrl: string, version: string): Promise<void> {
  await tx.query('UPDATE federation_nodes SET base_url = $2, version = $3 WHERE node_id = $1', [nodeId, baseUrl, version]);
}

/** The nearest homed ancestor of a prefix (itself included) and its node. */
export async function findHome(db: Db, ancestors: readonly string[]): Promise<{ prefix: string; node: NodeRow } | undefined> {
  const { rows } = await db.query<RawNode & { homed: string }>(
    `SELECT p.prefix AS homed, n.* FROM federation_prefixes p JOIN federation_nodes n ON n.node_id = p.node_id
     WHERE p.prefix = ANY($1::text[]) ORDER BY length(p.prefix) DESC LIMIT 1`,
    [ancestors],
  );
  return rows[0] ? { prefix: rows[0].homed, node: toNode(rows[0]) } : undefined;
}

export async function recordHeartbeat(db: Db, nodeId: string, status: NodeStatus): Promise<number> {
  const { rows } = await db.query<{ acked_seq: string }>(
    `UPDATE federation_nodes SET last_heartbeat_at = now(), last_status = $2, version = $3 WHERE node_id = $1 RETURNING acked_seq`,
    [nodeId, JSON.stringify(status), status.version],
  );
  return Number(rows[0]?.acked_seq ?? 0);
}

/** Nodes whose state differs from the one last reported, with the new state (the monitor logs them). */
export async function updateReportedStates(db: Db, downAfterMs: number): Promise<Array<{ nodeId: string; state: string }>> {
  const { rows } = await db.query<{ node_id: string; reported_state: string }>(
    `WITH s AS (
       SELECT node_id, CASE WHEN last_heartbeat_at IS NULL THEN 'unknown'
                            WHEN last_heartbeat_at < now() - make_interval(secs => $1::float8 / 1000) THEN 'down'
                            ELSE 'up' END AS state
       FROM federation_nodes)
     UPDATE federation_nodes n SET reported_state = s.state FROM s
     WHERE n.node_id = s.node_id AND n.reported_state <> s.state RETURNING n.node_id, n.reported_state`,
    [downAfterMs],
  );
  return rows.map((r) => ({ nodeId: r.node_id, state: r.reported_state }));
}

/** false when this signature was seen before (a replay). */
export async function rememberSignature(db: Db, hash: Buffer): Promise<boolean> {
  const { rowCount } = await db.query(
    'INSERT INTO federation_seen_signatures (signature_hash) VALUES ($1) ON CONFLICT DO NOTHING',
    [hash],
  );
  return rowCount === 1;
}

export async function forgetSignatures(db: Db, olderThanMs: number): Promise<void> {
  await db.query('DELETE FROM federation_seen_signatures WHERE seen_at < now() - make_interval(secs => $1::float8 / 1000)', [olderThanMs]);
}

export async function setAcked(tx: Tx, nodeId: string, ackedSeq: number): Promise<void> {
  await tx.query('UPDATE federation_nodes SET acked_seq = $2 WHERE node_id = $1', [nodeId, ackedSeq]);
}

export interface EscrowWrite {
  prefix: string;
  suffix: string;
  version: number;
  valuesJson: string;
  seq: number;
}

export async function upsertEscrow(tx: Tx, nodeId: string, rows: readonly EscrowWrite[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `INSERT INTO federation_escrow (node_id, prefix, suffix, version, handle_values, seq)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::json[], $6::bigint[])
     ON CONFLICT (node_id, prefix, suffix) DO UPDATE
       SET version = EXCLUDED.version, handle_values = EXCLUDED.handle_values, seq = EXCLUDED.seq`,
    [nodeId, rows.map((r) => r.prefix), rows.map((r) => r.suffix), rows.map((r) => r.version), rows.map((r) => r.valuesJson), rows.map((r) => r.seq)],
  );
}

export async function deleteEscrow(tx: Tx, nodeId: string, keys: ReadonlyArray<{ prefix: string; suffix: string }>): Promise<void> {
  if (keys.length === 0) return;
  await tx.query(
    `DELETE FROM federation_escrow e USING unnest($2::text[], $3::text[]) AS k(prefix, suffix)
     WHERE e.node_id = $1 AND e.prefix = k.prefix AND e.suffix = k.suffix`,
    [nodeId, keys.map((k) => k.prefix), keys.map((k) => k.suffix)],
  );
}

/** SNAPSHOT_END: drops every record the snapshot (starting at `start`) did not write. */
export async function purgeBefore(tx: Tx, nodeId: string, start: number): Promise<number> {
  const { rowCount } = await tx.query('DELETE FROM federation_escrow WHERE node_id = $1 AND seq < $2', [nodeId, start]);
  return rowCount ?? 0;
}

export async function findEscrow(db: Db, nodeId: string, prefix: string, suffix: string): Promise<{ version: number; values: HandleValue[] } | undefined> {
  const { rows } = await db.query<{ version: string; handle_values: HandleValue[] }>(
    'SELECT version, handle_values FROM federation_escrow WHERE node_id = $1 AND prefix = $2 AND suffix = $3',
    [nodeId, prefix, suffix],
  );
  return rows[0] ? { version: Number(rows[0].version), values: rows[0].handle_values } : undefined;
}

export async function escrowDigests(db: Db, nodeId: string): Promise<PrefixDigest[]> {
  const { rows } = await db.query<{ prefix: string; n: string; digest: string }>(DIGEST_SQL('federation_escrow', 'WHERE node_id = $1'), [nodeId]);
  return rows.map((r) => ({ prefix: r.prefix, count: Number(r.n), digest: r.digest }));
}
