/**
 * Counts registrations in the write's own transaction: one appended delta row per (prefix, day)
 * of the changes, so the counts commit or roll back with the data and writers share no row.
 */
import type { Tx } from '../infra/postgres.js';
import type { ChangeSink, IdentifierChange } from '../registry/change-sink.js';
import { dayIn } from './periods.js';
import { appendRegistrationDeltas, registrationDeltasStatement, type Counts, type DeltaRow } from './repository.js';

const SLOT = { create: 0, update: 1, delete: 2 } as const;

export function registrationCountingSink(timeZone: string): ChangeSink {
  const deltas = (changes: readonly IdentifierChange[]): DeltaRow[] => {
    const rows = new Map<string, DeltaRow>();
    // A batch's changes share one time: the day is computed once per distinct time.
    let at = '';
    let day = '';
    for (const change of changes) {
      if (change.at !== at) {
        at = change.at;
        day = dayIn(timeZone, new Date(at));
      }
      const key = `${change.prefix}\u0000${day}`;
      let row = rows.get(key);
      if (!row) {
        row = { prefix: change.prefix, day, counts: [0, 0, 0] as Counts };
        rows.set(key, row);
      }
      row.counts[SLOT[change.op]] += 1;
    }
    return [...rows.values()];
  };
  return {
    name: 'stats',
    async record(tx: Tx, changes: readonly IdentifierChange[]): Promise<void> {
      await appendRegistrationDeltas(tx, deltas(changes));
    },
    statement(changes) {
      return changes.length === 0 ? undefined : registrationDeltasStatement(deltas(changes));
    },
  };
}
