/** Canonical JSON: object keys sorted, so equal data always serialises (and digests) equally. Pure. */

/**
 * JSON with object keys sorted (UTF-16 code unit order) and undefined members left out, so equal
 * data always digests equally: audit digests, Idempotency-Key request hashes. (Built by hand: it
 * runs for every entry a write appends.)
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    let out = `[${canonicalJson(value[0])}`;
    for (let i = 1; i < value.length; i += 1) out += `,${canonicalJson(value[i])}`;
    return `${out}]`;
  }
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object);
  if (keys.length > 1) sortKeys(keys);
  let out = '{';
  let first = true;
  for (const key of keys) {
    const v = object[key];
    if (v === undefined) continue;
    if (first) first = false;
    else out += ',';
    // Strings and numbers directly, as JSON.stringify writes them (a non-finite number is null).
    out += `${quotedKey(key)}:${typeof v === 'string' ? JSON.stringify(v) : typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'null') : canonicalJson(v)}`;
  }
  return `${out}}`;
}

/**
 * Sorts keys in place as Array.prototype.sort() would (UTF-16 code unit order; keys are distinct).
 * Objects here have a handful of keys, often in order already: an insertion sort with `<` does
 * them in a fraction of the time of the generic sort, which compares through its comparator
 * machinery. Large objects take the generic sort.
 */
function sortKeys(keys: string[]): void {
  const n = keys.length;
  if (n > 16) {
    keys.sort();
    return;
  }
  for (let i = 1; i < n; i += 1) {
    const key = keys[i]!;
    let j = i - 1;
    if (keys[j]! < key) continue;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j -= 1;
    }
    keys[j + 1] = key;
  }
}

// Records repeat a handful of keys (index, type, data, format, value, ttl, timestamp...): each is quoted once.
const QUOTED_KEYS = new Map<string, string>();
const MAX_QUOTED_KEYS = 4096;

function quotedKey(key: string): string {
  let quoted = QUOTED_KEYS.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (QUOTED_KEYS.size < MAX_QUOTED_KEYS) QUOTED_KEYS.set(key, quoted);
  }
  return quoted;
}
