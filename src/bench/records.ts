/** The record the bench seeds: a typical product identifier (a URL, a few attributes, HS_ADMIN). */
import { normaliseValues, type HandleValue } from '../handle/values.js';

export const BENCH_SUFFIX = 'BENCH-';
const SEEDED_AT = '2026-01-01T00:00:00.000Z';
const SUFFIX_PLACEHOLDER = '{{suffix}}';

/** The seeded values of `${prefix}/BENCH-<n>`, with `{{suffix}}` where the suffix goes. */
export function benchValueTemplate(prefix: string): HandleValue[] {
  return normaliseValues(
    [
      { index: 1, type: 'URL', data: { format: 'string', value: `https://trace.example.com/p/${prefix}/${SUFFIX_PLACEHOLDER}` } },
      { index: 2, type: 'EMAIL', data: { format: 'string', value: 'quality@example.com' } },
      { index: 2001, type: 'product.name', data: { format: 'string', value: 'Hydraulic valve body, cast steel' } },
      { index: 2002, type: 'product.batch', data: { format: 'string', value: '2026-11-B07' } },
      { index: 2003, type: 'manufacturer.uscc', data: { format: 'string', value: '914403001922038216' } },
    ],
    { limits: { maxValues: 100, maxValueBytes: 65536, defaultTtl: 86400 }, now: SEEDED_AT, prefix },
  );
}

/** JSON of the template, for SQL to substitute each row's suffix into. */
export function benchValuesJson(prefix: string): { json: string; placeholder: string } {
  return { json: JSON.stringify(benchValueTemplate(prefix)), placeholder: SUFFIX_PLACEHOLDER };
}

/** A resolution body of the same shape and size as a seeded record's: the ceiling scenario's answer. */
export function ceilingBody(prefix: string): Buffer {
  const suffix = `${BENCH_SUFFIX}50000`;
  const values = JSON.parse(benchValuesJson(prefix).json.replaceAll(SUFFIX_PLACEHOLDER, suffix)) as HandleValue[];
  return Buffer.from(JSON.stringify({ responseCode: 1, handle: `${prefix}/${suffix}`, values }));
}
