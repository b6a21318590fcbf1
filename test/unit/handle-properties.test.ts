/** Property-based tests (fast-check) of handle parsing and the value codecs. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidValueError, normaliseData } from '../../src/handle/formats.js';
import { InvalidHandleError, MAX_HANDLE_BYTES, parseHandle } from '../../src/handle/handle.js';

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split('');
const segment = fc.string({ unit: fc.constantFrom(...ALNUM), minLength: 1, maxLength: 6 });
const prefix = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('.'));
/** Any code point that is not a control character (lone surrogates cannot be drawn from full code points). */
const suffixChar = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
).filter((c) => !/[\u0000-\u001f\u007f-\u009f]/.test(c));
const suffix = fc.array(suffixChar, { minLength: 1, maxLength: 40 }).map((cs) => cs.join(''))
  .filter((s) => !/(?:^|\/)\.{1,2}(?:\/|$)/.test(s));
const validHandle = fc.tuple(prefix, suffix).filter(([p, s]) => Buffer.byteLength(`${p}/${s}`) <= MAX_HANDLE_BYTES);

/** Hostile inputs: anything, biased towards the characters that matter to parsing. */
const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: fc.constantFrom('/', '.', '%', '\u0000', '\u0085', '\ud800', '\udc00', 'a', 'A', '8', ' ', '\\', '..', '%2F', '%00', 'é'), maxLength: 60 }),
  fc.tuple(prefix, fc.string({ maxLength: 300 })).map(([p, s]) => `${p}/${s}`),
);

describe('parseHandle', () => {
  it('parse(format(x)) == x: prefix upper-cased, suffix kept byte for byte', () => {
    fc.assert(fc.property(validHandle, ([p, s]) => {
      const parsed = parseHandle(`${p}/${s}`);
      expect(parsed.prefix).toBe(p.toUpperCase());
      expect(parsed.suffix).toBe(s);
      expect(parseHandle(parsed.handle)).toEqual(parsed); // normalising twice changes nothing
    }), { numRuns: 2000 });
  });

  it('prefixes compare case-insensitively: any casing parses to the same handle', () => {
    fc.assert(fc.property(validHandle, ([p, s]) => {
      expect(parseHandle(`${p.toLowerCase()}/${s}`).handle).toBe(parseHandle(`${p.toUpperCase()}/${s}`).handle);
    }));
  });

  it('throws nothing but InvalidHandleError, and what it accepts is well formed', () => {
    fc.assert(fc.property(nasty, (input) => {
      let parsed;
      try {
        parsed = parseHandle(input);
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidHandleError);
        return;
      }
      expect(Buffer.byteLength(parsed.handle)).toBeLessThanOrEqual(MAX_HANDLE_BYTES);
      expect(parsed.prefix).toMatch(/^[A-Z0-9]+(\.[A-Z0-9]+)*$/);
      expect(parsed.suffix).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
      expect(parsed.suffix).not.toMatch(/(?:^|\/)\.{1,2}(?:\/|$)/);
      expect(parsed.handle).toBe(`${parsed.prefix}/${parsed.suffix}`);
    }), { numRuns: 5000 });
  });
});

describe('value codecs', () => {
  it('hex input is stored as base64 of the same bytes; base64 is kept as given', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const buf = Buffer.from(bytes);
      const fromHex = normaliseData('v', 'hex', buf.toString('hex'));
      expect(fromHex.data.format).toBe('base64');
      expect(Buffer.from(fromHex.data.value as string, 'base64').equals(buf)).toBe(true);
      expect(fromHex.bytes).toBe(buf.length);
      const b64 = normaliseData('v', 'base64', buf.toString('base64'));
      expect(b64.data.value).toBe(buf.toString('base64'));
      expect(normaliseData('v', 'base64', b64.data.value).data).toEqual(b64.data); // idempotent
    }));
  });

  it('admin and vlist data normalise their handles and round-trip', () => {
    fc.assert(fc.property(validHandle, fc.integer({ min: 0, max: 2147483647 }), ([p, s], index) => {
      const admin = normaliseData('v', 'admin', { handle: `${p}/${s}`, index, permissions: '111111111111' });
      expect(admin.data.value).toEqual({ handle: `${p.toUpperCase()}/${s}`, index, permissions: '111111111111' });
      expect(normaliseData('v', 'admin', admin.data.value).data).toEqual(admin.data);
      const vlist = normaliseData('v', 'vlist', [{ handle: `${p}/${s}`, index }]);
      expect(normaliseData('v', 'vlist', vlist.data.value).data).toEqual(vlist.data);
    }));
  });

  it('throws nothing but InvalidValueError for any format and value', () => {
    const format = fc.oneof(fc.constantFrom('string', 'base64', 'hex', 'admin', 'vlist', 'site', 'key'), fc.string({ maxLength: 8 }));
    fc.assert(fc.property(format, fc.anything(), (f, value) => {
      try {
        normaliseData('v', f, value);
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidValueError);
      }
    }), { numRuns: 5000 });
  });
});
