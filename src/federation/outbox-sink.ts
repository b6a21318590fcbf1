/**
 * The federation outbox as a change sink: every identifier change is appended in the write's own
 * transaction (one multi-row INSERT per write), so a committed change cannot miss the sync.
 */
import type { Tx } from '../infra/postgres.js';
import type { ChangeSink, IdentifierChange } from '../registry/change-sink.js';

export function outboxSink(): ChangeSink {
  return {
    name: 'federation-outbox',
    async record(tx: Tx, changes: readonly IdentifierChange[]): Promise<void> {
      if (changes.length === 0) return;
      await tx.query({
        name: 'federation-outbox-append',
        text: `INSERT INTO federation_outbox (op, prefix, suffix, version, handle_values, at)
               SELECT * FROM unnest($1::char[], $2::text[], $3::text[], $4::bigint[], $5::json[], $6::timestamptz[])`,
        values: [
          changes.map((c) => (c.op === 'delete' ? 'd' : 'u')),
          changes.map((c) => c.prefix),
          changes.map((c) => c.suffix),
          changes.map((c) => c.version),
          changes.map((c) => (c.values === null ? null : JSON.stringify(c.values))),
          changes.map((c) => c.at),
        ],
      });
    },
  };
}
