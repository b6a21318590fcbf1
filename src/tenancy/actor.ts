/** Who is calling, and what that caller may do with a prefix. Pure. */
import { isPrefixUnder } from '../handle/handle.js';
import type { Role } from './api-keys.js';

export type Actor =
  | { kind: 'anonymous' }
  | { kind: 'key'; keyId: string; role: Role; enterpriseId: string | null; prefixes: readonly string[]; system?: true };

/** The role a change is recorded under: `system` for the command line (which acts with an admin's rights). */
export const recordedRole = (actor: Extract<Actor, { kind: 'key' }>): Role | 'system' => (actor.system ? 'system' : actor.role);

export const ANONYMOUS: Actor = { kind: 'anonymous' };

/**
 * Owning a prefix means writing under it and seeing its private values: an enterprise key owns
 * exactly its enterprise's active prefixes; an admin key owns everything under the node prefix.
 */
export function ownsPrefix(actor: Actor, prefix: string, nodePrefix: string): boolean {
  if (actor.kind !== 'key') return false;
  if (actor.role === 'admin') return isPrefixUnder(prefix, nodePrefix);
  if (actor.role === 'enterprise') return actor.prefixes.includes(prefix);
  return false;
}

/** Listing a prefix's identifiers: its owner, or an auditor (read-only) for any prefix of the node. */
export function canList(actor: Actor, prefix: string, nodePrefix: string): boolean {
  if (actor.kind === 'key' && actor.role === 'auditor') return isPrefixUnder(prefix, nodePrefix);
  return ownsPrefix(actor, prefix, nodePrefix);
}
