import { describe, expect, it } from 'vitest';
import { usccCheckCharacter, usccProblem } from '../../src/handle/uscc.js';

describe('unified social credit code (GB 32100-2015)', () => {
  it('accepts published codes', () => {
    // Huawei Technologies Co., Ltd. (Shenzhen); the check character is a digit.
    expect(usccProblem('914403001922038216')).toBeUndefined();
    // A code whose check character is a letter.
    expect(usccProblem('91110000600037341L')).toBeUndefined();
  });

  it('computes the check character over the first 17', () => {
    expect(usccCheckCharacter('91440300192203821')).toBe('6');
    expect(usccCheckCharacter('91110000600037341')).toBe('L');
    // Sum divisible by 31 gives check 0, not 31.
    let found = false;
    for (let i = 0; i < 2000 && !found; i += 1) {
      const first17 = `9132011500000${String(i).padStart(4, '0')}`;
      if (usccCheckCharacter(first17) === '0') found = true;
    }
    expect(found).toBe(true);
  });

  it('refuses a wrong check character and names the expected one', () => {
    expect(usccProblem('914403001922038217')).toBe('check character is 7; expected 6');
  });

  it('refuses wrong length, excluded letters and a non-numeric division code', () => {
    expect(usccProblem('91440300192203821')).toMatch(/18 characters/);
    expect(usccProblem('9144030019220382160')).toMatch(/18 characters/);
    for (const letter of ['I', 'O', 'Z', 'S', 'V']) {
      expect(usccProblem(`91440300192203821${letter}`)).toMatch(/not allowed/);
    }
    expect(usccProblem('91A40300192203821X')).toMatch(/administrative division/);
  });

  it('is case-insensitive on input', () => {
    expect(usccProblem('91110000600037341l')).toBeUndefined();
  });
});
