/** Import files as numbered lines: each line once, in increasing order, whatever csv-parse reports and when. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { csvLines, MAX_LINE_BYTES, ndjsonLines, type Line } from '../../src/registry/import-readers.js';

/** The file in 64 KiB reads, as the importer reads it. */
function file(text: string): Readable {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 1 << 16) chunks.push(bytes.subarray(at, at + (1 << 16)));
  return Readable.from(chunks);
}

/** The lines, and the `end` that stopped the reading, if one did (it must come last). */
async function read(lines: AsyncGenerator<Line>): Promise<{ lines: Line[]; error?: Error }> {
  const out: Line[] = [];
  let error: Error | undefined;
  for await (const line of lines) {
    if (error) throw new Error('a line came after the end');
    if (line.end) error = line.end;
    else out.push(line);
  }
  return error ? { lines: out, error } : { lines: out };
}

const show = (lines: Line[]) => lines.map((l) => (l.error ? `${l.lineNo}!${l.error.code}` : `${l.lineNo}`));

describe('CSV lines', () => {
  it('gives a line with two stray quotes once, as one rejection', async () => {
    const { lines } = await read(csvLines(file('suffix,URL\nP-1,12" x 4" flange\nP-2,https://example.com/2\n')));
    expect(show(lines)).toEqual(['1', '2!MALFORMED_LINE', '3']);
    expect(lines[1]!.text).toMatch(/^P-1,12" x 4"/); // csv-parse keeps the record up to its last error
  });

  it('gives unreadable lines in their place among the good ones, in increasing order', async () => {
    const rows = ['suffix,URL'];
    for (let i = 2; i <= 20_000; i += 1) rows.push(i % 997 === 0 ? `P-${i},ab"c"d` : `P-${i},https://example.com/${i}`);
    const { lines, error } = await read(csvLines(file(`${rows.join('\n')}\n`)));
    expect(error).toBeUndefined();
    expect(lines.map((l) => l.lineNo)).toEqual(Array.from({ length: 20_000 }, (_, i) => i + 1));
    const bad = lines.filter((l) => l.error).map((l) => l.lineNo);
    expect(bad).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 997));
  });

  it('stops with an error at a record too long to read, after giving every line before it', async () => {
    const rows = ['suffix,URL'];
    for (let i = 2; i <= 3000; i += 1) rows.push(i === 5 ? `P-5,${'x'.repeat(MAX_LINE_BYTES + 10_000)}` : `P-${i},https://example.com/${i}`);
    const { lines, error } = await read(csvLines(file(`${rows.join('\n')}\n`)));
    expect(show(lines)).toEqual(['1', '2', '3', '4']);
    expect(error).toMatchObject({ code: 'RECORD_TOO_LONG' });
    expect(error!.message).toContain('after line 4');
  });

  it('stops the same way at an unclosed quote, rather than reading on in silence', async () => {
    const rows = ['suffix,URL'];
    for (let i = 2; i <= 60_000; i += 1) rows.push(i === 10 ? `P-${i},"unclosed` : `P-${i},https://example.com/${i}`);
    const { lines, error } = await read(csvLines(file(`${rows.join('\n')}\n`)));
    expect(lines.at(-1)!.lineNo).toBe(9);
    expect(error).toMatchObject({ code: 'RECORD_TOO_LONG' });
  });

  it('reads a byte-order mark, blank lines before the header, mixed line ends and quoted newlines', async () => {
    const { lines } = await read(csvLines(file('\uFEFF\nsuffix,URL\r\nP-1,"a\r\nb"\r\nP-2,x\nP-3,y')));
    expect(lines.map((l) => l.fields)).toEqual([['suffix', 'URL'], ['P-1', 'a\r\nb'], ['P-2', 'x'], ['P-3', 'y']]);
    expect(lines.map((l) => l.lineNo)).toEqual([...lines.map((l) => l.lineNo)].sort((a, b) => a - b));
  });
});

describe('NDJSON lines', () => {
  it('drops a byte-order mark before the first line and reads CRLF and a last line without a newline', async () => {
    const { lines } = await read(ndjsonLines(file('\uFEFF{"suffix":"A"}\r\n\n{"suffix":"B"}')));
    expect(lines.map((l) => [l.lineNo, l.text])).toEqual([[1, '{"suffix":"A"}'], [2, ''], [3, '{"suffix":"B"}']]);
  });

  it('rejects an overlong line whole and reads on', async () => {
    const { lines } = await read(ndjsonLines(file(`{"suffix":"A"}\n${'x'.repeat(MAX_LINE_BYTES + 5)}\n{"suffix":"B"}\n`)));
    expect(show(lines)).toEqual(['1', '2!LINE_TOO_LONG', '3']);
  });
});
