/**
 * The audit log's change sink: one entry per identifier change, in the write's own transaction
 * (as a statement the registry sends together with the other sinks').
 */
import type { Tx } from '../infra/postgres.js';
import type { ChangeSink, IdentifierChange } from '../registry/change-sink.js';
import type { AuditEntry } from './entry.js';
import type { AuditTrail } from './service.js';

const entries = (changes: readonly IdentifierChange[]): AuditEntry[] =>
  changes.map((c) => ({
    context: { keyId: c.actor.keyId, role: c.actor.role, requestId: c.request?.id ?? null, clientIp: c.request?.ip ?? null },
    action: `identifier.${c.op}`,
    target: c.handle,
    before: c.previous,
    after: c.values === null ? null : { version: c.version, values: c.values },
  }));

export function auditSink(audit: AuditTrail): ChangeSink {
  return {
    name: 'audit',
    record(tx: Tx, changes: readonly IdentifierChange[]): Promise<void> {
      return audit.append(tx, entries(changes));
    },
    statement(changes) {
      return audit.statement(entries(changes));
    },
  };
}
