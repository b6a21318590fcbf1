import { describe, expect, it } from 'vitest';
import { InvalidHandleError, isChildPrefix, isPrefixUnder, MAX_HANDLE_BYTES, normalisePrefix, parseHandle } from '../../src/handle/handle.js';

const invalid = (input: string) => {
  try {
    parseHandle(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidHandleError);
    return (err as Error).message;
  }
  throw new Error(`${JSON.stringify(input)} was accepted`);
};

describe('parseHandle', () => {
  it('splits at the first slash and keeps the rest of the suffix', () => {
    expect(parseHandle('88.118.8/PART-0001')).toEqual({ prefix: '88.118.8', suffix: 'PART-0001', handle: '88.118.8/PART-0001' });
    expect(parseHandle('88.118.8/a/b/c').suffix).toBe('a/b/c');
  });

  it('upper-cases the prefix but never the suffix', () => {
    expect(parseHandle('88.abc.x9/Part-a')).toEqual({ prefix: '88.ABC.X9', suffix: 'Part-a', handle: '88.ABC.X9/Part-a' });
  });

  it('keeps zero-padded prefix segments as strings', () => {
    expect(parseHandle('88.101.0042/x').prefix).toBe('88.101.0042');
    expect(parseHandle('88.101.0042/x').handle).not.toBe(parseHandle('88.101.42/x').handle);
  });

  it('accepts UTF-8 suffixes', () => {
    expect(parseHandle('88.118.8/零件-编号-一').suffix).toBe('零件-编号-一');
    expect(parseHandle('88.118.8/🔩').suffix).toBe('🔩');
  });

  it('enforces the 255-byte limit on the whole handle, counted in UTF-8 bytes', () => {
    const prefix = '88.118.8/';
    const fits = `${prefix}${'a'.repeat(MAX_HANDLE_BYTES - prefix.length)}`;
    expect(Buffer.byteLength(fits)).toBe(255);
    expect(parseHandle(fits).handle).toBe(fits);
    expect(invalid(`${fits}a`)).toMatch(/256 bytes/);
    // 3-byte characters: 82 of them make 246 + 9 = 255 bytes; one more is over.
    const cjk = `${prefix}${'件'.repeat(82)}`;
    expect(Buffer.byteLength(cjk)).toBe(255);
    expect(parseHandle(cjk).suffix.length).toBe(82);
    expect(invalid(`${cjk}a`)).toMatch(/bytes/);
  });

  it('refuses control characters anywhere in the suffix', () => {
    for (const c of ['\u0000', '\u0001', '\n', '\r', '\t', '\u007f', '\u0085', '\u009f']) {
      expect(invalid(`88.118.8/a${c}b`)).toMatch(/control character/);
    }
  });

  it('refuses lone surrogates (not encodable as UTF-8)', () => {
    expect(invalid('88.118.8/a\ud800b')).toMatch(/UTF-8/);
    expect(invalid('88.118.8/a\udc00')).toMatch(/UTF-8/);
  });

  it('gives a normalised handle back unchanged (resolution looks raw strings up in L1 before parsing)', () => {
    const inputs = ['88.118.8/PART-0001', '88.abc.8/x', '86.ABC.0042/a/b', '88.118/零件-1', '88.118/ a b ', 'zz.Yy/%2F..', '88.118/\u{1F600}'];
    for (const input of inputs) {
      const once = parseHandle(input).handle;
      expect(parseHandle(once).handle).toBe(once);
      expect(parseHandle(once).prefix).toBe(parseHandle(input).prefix);
    }
    // A string that is not normalised is never equal to its normalised form, so it cannot hit L1 raw.
    expect(parseHandle('88.abc.8/x').handle).not.toBe('88.abc.8/x');
  });

  it('refuses empty parts and malformed prefixes', () => {
    expect(invalid('')).toMatch(/no "\/"/);
    expect(invalid('88.118.8')).toMatch(/no "\/"/);
    expect(invalid('/x')).toMatch(/prefix is empty/);
    expect(invalid('88.118.8/')).toMatch(/suffix is empty/);
    expect(invalid('88..8/x')).toMatch(/empty segment/);
    expect(invalid('.88/x')).toMatch(/empty segment/);
    expect(invalid('88./x')).toMatch(/empty segment/);
    expect(invalid('88.1-1/x')).toMatch(/letters and digits/);
    expect(invalid('88.一/x')).toMatch(/letters and digits/);
    expect(invalid('88 .1/x')).toMatch(/letters and digits/);
  });
});

describe('prefix relations', () => {
  it('normalises case', () => {
    expect(normalisePrefix('88.abc')).toBe('88.ABC');
    expect(() => normalisePrefix('')).toThrow(InvalidHandleError);
  });

  it('knows what lies under a prefix, by whole segments', () => {
    expect(isPrefixUnder('88.118.8', '88.118')).toBe(true);
    expect(isPrefixUnder('88.118', '88.118')).toBe(true);
    expect(isPrefixUnder('88.1189', '88.118')).toBe(false);
    expect(isChildPrefix('88.118.8', '88.118')).toBe(true);
    expect(isChildPrefix('88.118.8.1', '88.118')).toBe(false);
    expect(isChildPrefix('88.118', '88.118')).toBe(false);
  });
});
