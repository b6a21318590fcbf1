/** HTTP preconditions of a write: overwrite=false, If-None-Match: * and If-Match: "<version>". */
import { errors } from '../infra/errors.js';
import type { WriteConditions } from './service.js';

/**
 * Parses If-Match: `*`, or a list of `"<version>"` entity tags. Weak tags (`W/"3"`) are valid but
 * never match a write (strong comparison, RFC 9110), so a list of only weak tags fails with 412.
 * Every tag a read gives for a version names it: `"3"`, `"3-pb"` (protobuf), `"3-o"` and
 * `"3-o-pb"` (an owner's view with private values).
 */
export function parseIfMatch(header: string | undefined): WriteConditions['ifMatch'] {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (value === '*') return '*';
  const versions: number[] = [];
  for (const part of value.split(',')) {
    const tag = part.trim();
    if (/^W\/"[^"]*"$/.test(tag)) continue;
    const match = /^"([1-9][0-9]{0,15})(?:-o)?(?:-pb)?"$/.exec(tag);
    if (!match) throw errors.badRequest('INVALID_PRECONDITION', `If-Match must be * or "<version>" entity tags; got ${JSON.stringify(header)}`);
    versions.push(Number(match[1]));
  }
  return versions;
}

export function writeConditions(headers: { 'if-match'?: string; 'if-none-match'?: string }, overwrite: boolean | undefined): WriteConditions {
  const ifNoneMatch = headers['if-none-match']?.trim();
  if (ifNoneMatch !== undefined && ifNoneMatch !== '*') {
    throw errors.badRequest('INVALID_PRECONDITION', 'on writes If-None-Match supports only * (create only)');
  }
  const conditions: WriteConditions = { createOnly: overwrite === false || ifNoneMatch === '*' };
  const ifMatch = parseIfMatch(headers['if-match']);
  if (ifMatch !== undefined) conditions.ifMatch = ifMatch;
  return conditions;
}
