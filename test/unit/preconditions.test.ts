import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/infra/errors.js';
import { parseIfMatch, writeConditions } from '../../src/registry/preconditions.js';

describe('write preconditions', () => {
  it('parses If-Match entity tags and *', () => {
    expect(parseIfMatch(undefined)).toBeUndefined();
    expect(parseIfMatch('*')).toBe('*');
    expect(parseIfMatch('"3"')).toEqual([3]);
    expect(parseIfMatch('"3", "4"')).toEqual([3, 4]);
  });

  it('takes every tag a read gives for a version: protobuf and the owner view', () => {
    expect(parseIfMatch('"3-pb"')).toEqual([3]);
    expect(parseIfMatch('"3-o"')).toEqual([3]);
    expect(parseIfMatch('"3-o-pb", "4"')).toEqual([3, 4]);
    for (const bad of ['"3-x"', '"3-pb-o"', '"-o"', '"3-"']) expect(() => parseIfMatch(bad)).toThrow(AppError);
  });

  it('refuses malformed tags', () => {
    for (const bad of ['3', '"x"', '"0"', '', 'W/3']) expect(() => parseIfMatch(bad)).toThrow(AppError);
  });

  it('accepts weak tags but never matches them (strong comparison)', () => {
    expect(parseIfMatch('W/"3"')).toEqual([]);
    expect(parseIfMatch('W/"3", "4"')).toEqual([4]);
  });

  it('treats overwrite=false and If-None-Match: * as create-only', () => {
    expect(writeConditions({}, false).createOnly).toBe(true);
    expect(writeConditions({ 'if-none-match': '*' }, undefined).createOnly).toBe(true);
    expect(writeConditions({}, true).createOnly).toBe(false);
    expect(writeConditions({}, undefined).createOnly).toBe(false);
    expect(() => writeConditions({ 'if-none-match': '"2"' }, undefined)).toThrow(/only \*/);
  });
});
