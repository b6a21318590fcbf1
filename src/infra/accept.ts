/**
 * Content negotiation on Accept as RFC 9110 has it (q-values, q=0 for "not this", wildcards,
 * case-insensitive types), with negotiator. The first offered type is the default: the answer when
 * the header is absent, or names none of them.
 */
import Negotiator from 'negotiator';

export function preferredType<T extends string>(accept: string | undefined, offered: readonly [T, ...T[]]): T {
  if (accept === undefined) return offered[0];
  return (new Negotiator({ headers: { accept } }).mediaType(offered as unknown as string[]) as T | undefined) ?? offered[0];
}
