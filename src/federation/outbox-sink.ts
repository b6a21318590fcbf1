/**
 * The federation outbox as a change sink: every identifier change is appended in the write's own
 * transaction, so a committed change cannot miss the sync. Its append is a statement the registry
 * sends together with the other sinks' (one query per write), its rows one JSON parameter.
 */
import type { Tx } from '../infra/postgres.js';
import type { ChangeSink, IdentifierChange, SinkStatement } from '../registry/change-sink.js';

const APPEND = `INSERT INTO federation_outbox (op, prefix, suffix, version, handle_values, at)
  SELECT c.o, c.p, c.s, c.v, c.h::json, c.t FROM json_to_recordset($1::json) AS c(o char, p text, s text, v bigint, h text, t timestamptz)`;

function statement(changes: readonly IdentifierChange[]): SinkStatement | undefined {
  if (changes.length === 0) return undefined;
  // The values as JSON text (cast to json in SQL), as batch-repository.ts sends them and for the same reason.
  const rows = changes.map((c) => ({ o: c.op === 'delete' ? 'd' : 'u', p: c.prefix, s: c.suffix, v: c.version, h: c.values === null ? null : (c.valuesJson ?? JSON.stringify(c.values)), t: c.at }));
  return { name: 'federation-outbox-append', text: APPEND, values: [JSON.stringify(rows)] };
}

export function outboxSink(): ChangeSink {
  return {
    name: 'federation-outbox',
    async record(tx: Tx, changes: readonly IdentifierChange[]): Promise<void> {
      const part = statement(changes);
      if (part) await tx.query(part);
    },
    statement,
  };
}
