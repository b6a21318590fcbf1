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
  /** The record before the change; null for a create. */
  previous: { version: number; values: HandleValue[] } | null;
  actor: { keyId: string; role: Role };
  /** The HTTP request behind the change (absent for the command line and imports). */
  request?: RequestInfo;
  /** ISO time of the change (server clock). */
  at: string;
}

export interface ChangeSink {
  readonly name: string;
  record(tx: Tx, changes: readonly IdentifierChange[]): Promise<void>;
}
