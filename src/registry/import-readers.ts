/**
 * An import file as numbered lines, read with back-pressure: NDJSON split on newlines, CSV
 * through csv-parse. Lines come out in increasing line order, each line once, which is what a
 * chunk's progress (`lines_read`: every line up to it is written or rejected) relies on.
 */
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { parse as parseCsv } from 'csv-parse';
import { LineError } from './import-lines.js';

/** Longest line read; a longer one is rejected whole (NDJSON) or stops the import (CSV). */
export const MAX_LINE_BYTES = 1 << 20;
/** How much of an unreadable line a rejection keeps. */
const KEPT_TEXT = 2000;

export interface Line {
  lineNo: number;
  text: string;
  /** Set when the line could not even be read as a record (too long, bad CSV quoting). */
  error?: LineError;
  fields?: string[];
  /** Set on the last item when the file cannot be read past it (it is not a line then). */
  end?: LineError;
}

const tooLong = (lineNo: number, text: string): Line => ({ lineNo, text: text.slice(0, 200), error: new LineError('LINE_TOO_LONG', `the line is longer than ${MAX_LINE_BYTES} bytes`) });

/** NDJSON lines, numbered from 1 (a byte-order mark before the first is dropped); an overlong line comes back as an error. */
export async function* ndjsonLines(input: Readable): AsyncGenerator<Line> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let lineNo = 0;
  let skipping = false;
  let first = true;
  for await (const chunk of input) {
    let text = rest + decoder.write(chunk as Buffer);
    if (first && text.length > 0) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const parts = text.split('\n');
    rest = parts.pop()!;
    for (const part of parts) {
      lineNo += 1;
      if (skipping || part.length > MAX_LINE_BYTES) {
        skipping = false;
        yield tooLong(lineNo, part);
        continue;
      }
      yield { lineNo, text: part.endsWith('\r') ? part.slice(0, -1) : part };
    }
    if (rest.length > MAX_LINE_BYTES) {
      skipping = true;
      rest = rest.slice(0, 200);
    }
  }
  rest += decoder.end();
  if (first && rest.charCodeAt(0) === 0xfeff) rest = rest.slice(1);
  if (rest.length > 0 || skipping) {
    lineNo += 1;
    yield skipping ? tooLong(lineNo, rest) : { lineNo, text: rest };
  }
}

/**
 * CSV records (the header first), numbered by the line they end on, with unreadable records as
 * errors in their place.
 *
 * csv-parse reports an unreadable record ('skip') while it parses a whole block of input, before
 * the good records of that block reach the reader, and may report one record more than once (one
 * error per stray quote). So errors wait here until the reader passes their line, and a line
 * is given once. A record longer than MAX_LINE_BYTES (an unclosed quote swallows the rest of the
 * file) is the end: csv-parse cannot resynchronise after it, so the last item is then an `end`
 * saying so (the import stops there with an error instead of silently ignoring the rest).
 */
export async function* csvLines(input: Readable): AsyncGenerator<Line> {
  // Both line ends, in any mix (csv-parse would otherwise take the first one it meets for all).
  const parser = parseCsv({ bom: true, record_delimiter: ['\r\n', '\n'], relax_column_count: true, skip_empty_lines: true, info: true, raw: true, skip_records_with_error: true, max_record_size: MAX_LINE_BYTES });
  const skipped: Line[] = [];
  let tooLongRecord = false;
  parser.on('skip', (err: Error & { code?: string; lines?: number; raw?: string }) => {
    const lineNo = err.lines ?? 0;
    if (err.code === 'CSV_MAX_RECORD_SIZE') {
      if (tooLongRecord) return;
      tooLongRecord = true;
      // Nothing after it can be read: stop reading the file.
      input.unpipe(parser);
      input.destroy();
      parser.end();
      return;
    }
    const text = String(err.raw ?? '').replace(/\r?\n$/, '').slice(0, KEPT_TEXT);
    skipped.push({ lineNo, text, error: new LineError('MALFORMED_LINE', `unreadable CSV: ${err.message}`) });
  });
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);
  let last = 0;
  /** The waiting errors of lines before `lineNo`, in order, each line once. */
  function* errorsBefore(lineNo: number): Generator<Line> {
    if (skipped.length === 0) return;
    skipped.sort((a, b) => a.lineNo - b.lineNo);
    while (skipped.length > 0 && skipped[0]!.lineNo < lineNo) {
      let line = skipped.shift()!;
      // One error per stray quote: the line once, with the most of its text any of them kept.
      while (skipped.length > 0 && skipped[0]!.lineNo === line.lineNo) {
        const again = skipped.shift()!;
        if (again.text.length > line.text.length) line = again;
      }
      if (line.lineNo <= last) continue;
      last = line.lineNo;
      yield line;
    }
  }
  for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number }; raw: string }>) {
    const lineNo = item.info.lines;
    yield* errorsBefore(lineNo);
    if (lineNo <= last) continue;
    last = lineNo;
    yield { lineNo, text: item.raw.replace(/\r?\n$/, ''), fields: item.record };
  }
  yield* errorsBefore(Number.POSITIVE_INFINITY);
  if (tooLongRecord) {
    const end = new LineError('RECORD_TOO_LONG', `the CSV record after line ${last} is longer than ${MAX_LINE_BYTES} bytes (an unclosed quote?): the file was not read past it`);
    yield { lineNo: last + 1, text: '', end };
  }
}
