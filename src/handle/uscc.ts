/**
 * Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters from a 31-character
 * alphabet (no I, O, Z, S, V); the last is a check character over the first 17.
 */
const ALPHABET = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/** The check character for the first 17 characters, or undefined if one is outside the alphabet. */
export function usccCheckCharacter(first17: string): string | undefined {
  if (first17.length !== 17) return undefined;
  let sum = 0;
  for (let i = 0; i < 17; i += 1) {
    const value = ALPHABET.indexOf(first17[i]!);
    if (value < 0) return undefined;
    sum += value * WEIGHTS[i]!;
  }
  return ALPHABET[(31 - (sum % 31)) % 31];
}

/** Why a code is not a valid USCC, or undefined when it is. Input is upper-cased first. */
export function usccProblem(code: string): string | undefined {
  const c = code.toUpperCase();
  if (c.length !== 18) return `a unified social credit code has 18 characters; got ${c.length}`;
  for (const ch of c) {
    if (!ALPHABET.includes(ch)) return `character ${JSON.stringify(ch)} is not allowed in a unified social credit code`;
  }
  if (!/^[0-9]{6}$/.test(c.slice(2, 8))) return 'characters 3 to 8 must be an administrative division code (digits)';
  const expected = usccCheckCharacter(c.slice(0, 17));
  if (expected !== c[17]) return `check character is ${c[17]}; expected ${expected}`;
  return undefined;
}
