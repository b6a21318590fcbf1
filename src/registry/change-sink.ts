/**
 * The seam through which every identifier write reaches federation, audit and statistics: the
 * registry hands each sink the changes inside the write's own transaction, so a committed write
 * can never miss them and a sink failure rolls the write back. Sinks append; they must not
 * update a shared row that every write would queue behind.
 */
import type { HandleValue } from '../handle/values.js';
import type { Tx } from '../infra/postgres.js';
import type { Role } from '../tenancy/api-keys.js';

/** Which request made a change, as the audit log records it. */
export interface RequestInfo {
  id: string;
  /** The client address as TRUST_PROXY lets the node see it. */
  ip: string;
}

export interface IdentifierChange {
  op: 'create' | 'update' | 'delete';
  handle: string;
  prefix: string;
  suffix: string;
  /** Version after the change; for a delete, the version that was deleted. */
  version: number;
  /** Values after the change; null for a delete. */
  values: HandleValue[] | null;
  /** `values` as JSON.stringify writes them (as stored), when the writer has made that text already. */
  valuesJson?: string;
  /** The record before the change; null for a create. */
  previous: { version: number; values: HandleValue[] } | null;
  actor: { keyId: string; role: Role | 'system' };
  /** The HTTP request behind the change (absent for the command line and imports). */
  request?: RequestInfo;
  /** ISO time of the change (server clock). */
  at: string;
}

/**
 * One data-modifying SQL statement (INSERT, UPDATE or DELETE without RETURNING) with its
 * parameters $1..$n. `name` identifies the text, which must be the same for every call.
 */
export interface SinkStatement {
  name: string;
  text: string;
  values: unknown[];
}

export interface ChangeSink {
  readonly name: string;
  record(tx: Tx, changes: readonly IdentifierChange[]): Promise<void>;
  /**
   * Optional: the sink's whole work as one statement (or nothing to write). The registry then
   * sends the statements of all such sinks as one (data-modifying CTEs), instead of calling
   * record(): a statement less per sink and write, which is most of what an append costs.
   */
  statement?(changes: readonly IdentifierChange[]): SinkStatement | undefined;
}

/** Each combination of statements seen, by its parts' names: its text and a short name of its own. */
const combined = new Map<string, { name: string; text: string }>();

/**
 * Several sinks' statements as one: WITH s0 AS (...), s1 AS (...) SELECT 1, parameters
 * renumbered. The combination is prepared under a short name of this process (`combined-N`):
 * the parts' names joined passed Postgres' 63-byte limit, which cuts names, so that two
 * combinations differing only after the cut would have collided.
 */
export function combineStatements(parts: readonly SinkStatement[]): SinkStatement {
  return combine(parts, false);
}

/**
 * A write (an INSERT without RETURNING) and the sinks' appends as one statement, the write run to
 * its end BEFORE any append. Postgres runs data-modifying CTEs that nothing reads at the end of
 * the statement, in an order of its own (in practice the last first): an outbox row appended
 * before the insert waited on a concurrent delete of the same handle took an id, and so a sync
 * position, before that delete's, and the top-level node applied create then delete. Here the
 * main query reads the write (`SELECT count(*) FROM s0`), so it completes first, waits included;
 * the appends run after it.
 */
export function writeThenSinks(write: SinkStatement, sinks: readonly SinkStatement[]): SinkStatement {
  if (sinks.length === 0) return write;
  return combine([write, ...sinks], true);
}

function combine(parts: readonly SinkStatement[], firstWrite: boolean): SinkStatement {
  if (parts.length === 1) return parts[0]!;
  const key = `${firstWrite ? 'w:' : ''}${parts.map((p) => p.name).join('+')}`;
  let statement = combined.get(key);
  if (statement === undefined) {
    let offset = 0;
    const ctes = parts.map((p, i) => {
      const body = p.text.replace(/\$(\d+)/g, (_m, n: string) => `$${Number(n) + offset}`);
      offset += p.values.length;
      return `s${i} AS (${body}${firstWrite && i === 0 ? ' RETURNING 1' : ''})`;
    });
    statement = { name: `combined-${combined.size + 1}`, text: `WITH ${ctes.join(', ')} SELECT ${firstWrite ? 'count(*) FROM s0' : '1'}` };
    combined.set(key, statement);
  }
  return { name: statement.name, text: statement.text, values: parts.flatMap((p) => p.values) };
}

/** Runs the sinks for changes inside the write's transaction: the statement sinks together, in one query. */
export async function runSinks(tx: Tx, sinks: readonly ChangeSink[], changes: readonly IdentifierChange[]): Promise<void> {
  const parts: SinkStatement[] = [];
  for (const sink of sinks) {
    if (!sink.statement) {
      await sink.record(tx, changes);
      continue;
    }
    const part = sink.statement(changes);
    if (part) parts.push(part);
  }
  if (parts.length === 0) return;
  const { name, text, values } = combineStatements(parts);
  await tx.query({ name, text, values });
}
