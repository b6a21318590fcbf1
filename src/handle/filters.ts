/** Resolution filters on a record's values (`type=` and `index=`). Pure, no I/O. */
import { isPublicRead, type HandleValue } from './values.js';

export interface ValueFilter {
  types?: readonly string[];
  indexes?: readonly number[];
}

/**
 * A type query matches case-insensitively; one ending in `.` also matches its subtypes
 * (`URL.` matches `URL`, `URL.ORG` and `URL.ORG.X`).
 */
export function typeMatches(query: string, type: string): boolean {
  const q = query.toUpperCase();
  const t = type.toUpperCase();
  if (!q.endsWith('.')) return q === t;
  return t.startsWith(q) || t === q.slice(0, -1);
}

/** Values matching any of the filters; the given array itself when there are none (never mutated). */
export function filterValues(values: HandleValue[], filter: ValueFilter): HandleValue[] {
  const types = filter.types ?? [];
  const indexes = filter.indexes ?? [];
  if (types.length === 0 && indexes.length === 0) return values;
  return values.filter((v) => indexes.includes(v.index) || types.some((q) => typeMatches(q, v.type)));
}

/** Drops the values whose permissions deny public read, for callers who do not own the prefix. */
export function visibleValues(values: HandleValue[], ownsPrefix: boolean): HandleValue[] {
  return ownsPrefix || values.every(isPublicRead) ? values : values.filter(isPublicRead);
}
