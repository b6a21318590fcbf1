import { usccCheckCharacter } from '../../src/handle/uscc.js';

/** A valid unified social credit code, different for each seed. */
export function makeUscc(seed: number): string {
  const first17 = `91320115${String(seed).padStart(9, '0')}`;
  return `${first17}${usccCheckCharacter(first17)}`;
}
