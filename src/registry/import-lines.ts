/**
 * Lines of an import file into batch operations. Pure: no I/O.
 * - NDJSON: one JSON object a line, `{"suffix":"X","values":[...]}` (or `"handle":"P/X"`).
 * - CSV: a header row, then one identifier a row. The first column is `suffix` (or `handle`);
 *   every other column is a value type, optionally with its index (`2001:product.name`; without
 *   one, the column's position: 1, 2, ...). Each non-empty cell is a string value.
 */
import type { ValueInput } from '../handle/values.js';
import type { BatchOperation } from './batch.js';

export type ImportFormat = 'ndjson' | 'csv';
export type ImportMode = 'create' | 'upsert';

/** Why a line was not imported: a stable code and a reason a person can act on. */
export class LineError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface ImportContext {
  prefix: string;
  mode: ImportMode;
}

function handleFrom(context: ImportContext, suffix: unknown, handle: unknown): string {
  if (typeof handle === 'string' && handle.length > 0) return handle;
  if (typeof suffix === 'string' && suffix.length > 0) return `${context.prefix}/${suffix}`;
  throw new LineError('MISSING_SUFFIX', 'the line names no suffix (or handle)');
}

/** One NDJSON line (not blank) as an operation. */
export function ndjsonOperation(context: ImportContext, line: string): BatchOperation {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    throw new LineError('MALFORMED_LINE', `not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new LineError('MALFORMED_LINE', 'a line must be a JSON object');
  const { suffix, handle, values, ...rest } = parsed as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new LineError('MALFORMED_LINE', `unknown field ${unknown[0]}; a line holds suffix (or handle) and values`);
  return { op: context.mode, handle: handleFrom(context, suffix, handle), values: values as ValueInput[] };
}

export interface CsvColumns {
  /** The first column names handles (true) or suffixes (false). */
  handles: boolean;
  /** Per further column: its value index and type. */
  values: Array<{ index: number; type: string }>;
}

const COLUMN = /^(?:([1-9][0-9]{0,9}):)?(\S(?:.*\S)?)$/;

/** Reads the header row; throws LineError when it cannot be used (the whole import fails). */
export function csvColumns(header: readonly string[]): CsvColumns {
  const first = header[0]?.trim().toLowerCase();
  if (first !== 'suffix' && first !== 'handle') throw new LineError('BAD_HEADER', 'the first column of the header must be suffix or handle');
  if (header.length < 2) throw new LineError('BAD_HEADER', 'the header names no value columns');
  const seen = new Set<number>();
  const values = header.slice(1).map((cell, i) => {
    const match = COLUMN.exec(cell.trim());
    if (!match) throw new LineError('BAD_HEADER', `column ${i + 2} has no type`);
    const index = match[1] ? Number(match[1]) : i + 1;
    if (seen.has(index)) throw new LineError('BAD_HEADER', `index ${index} is used by two columns`);
    seen.add(index);
    return { index, type: match[2]! };
  });
  return { handles: first === 'handle', values };
}

/** One CSV row (after the header) as an operation. */
export function csvOperation(context: ImportContext, columns: CsvColumns, row: readonly string[]): BatchOperation {
  if (row.length !== columns.values.length + 1) {
    throw new LineError('WRONG_COLUMNS', `expected ${columns.values.length + 1} columns as in the header, got ${row.length}`);
  }
  const values: ValueInput[] = [];
  columns.values.forEach((column, i) => {
    const cell = row[i + 1]!;
    if (cell !== '') values.push({ index: column.index, type: column.type, data: { format: 'string', value: cell } } as ValueInput);
  });
  const first = row[0]!.trim();
  return { op: context.mode, handle: handleFrom(context, columns.handles ? undefined : first, columns.handles ? first : undefined), values };
}
