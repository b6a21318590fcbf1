import { describe, expect, it } from 'vitest';
import { validatorCompiler } from '../../src/infra/validation.js';

describe('request validation', () => {
  const compile = validatorCompiler();
  const body = compile({ schema: { type: 'object', properties: { s: { type: 'string', maxLength: 3 } } }, httpPart: 'body', method: 'POST', url: '/' }) as (data: unknown) => boolean;

  it('measures maxLength in UTF-16 code units (String.length): never looser than code points, and no per-character count on hot routes', () => {
    expect(body({ s: '标识码' })).toBe(true);
    expect(body({ s: '标识码a' })).toBe(false);
    expect(body({ s: '😀a' })).toBe(true); // 3 code units
    expect(body({ s: '😀😀' })).toBe(false); // 2 code points, 4 code units
  });
});
