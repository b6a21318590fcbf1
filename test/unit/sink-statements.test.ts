/** Change sinks' statements combined into one: parameters renumbered, one text per set of sinks. */
import { describe, expect, it } from 'vitest';
import { combineStatements } from '../../src/registry/change-sink.js';

describe('combineStatements', () => {
  it('passes one statement through as it is', () => {
    const one = { name: 'a', text: 'INSERT INTO a SELECT $1', values: [1] };
    expect(combineStatements([one])).toBe(one);
  });

  it('joins several as data-modifying CTEs, renumbering each one\'s parameters after the previous ones', () => {
    const a = { name: 'a', text: 'INSERT INTO a SELECT * FROM unnest($1::int[], $2::text[])', values: [[1], ['x']] };
    const b = { name: 'b', text: 'INSERT INTO b VALUES ($1, $2, $3, $10)', values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] };
    const c = { name: 'c', text: 'DELETE FROM c WHERE id = $1', values: [99] };
    const all = combineStatements([a, b, c]);
    // A short name of its own (Postgres cuts names at 63 bytes), the same each time, another per combination.
    expect(all.name).toMatch(/^combined-\d+$/);
    expect(combineStatements([a, b, c]).name).toBe(all.name);
    expect(combineStatements([a, c]).name).not.toBe(all.name);
    expect(all.text).toBe('WITH s0 AS (INSERT INTO a SELECT * FROM unnest($1::int[], $2::text[])), s1 AS (INSERT INTO b VALUES ($3, $4, $5, $12)), s2 AS (DELETE FROM c WHERE id = $13) SELECT 1');
    expect(all.values).toEqual([[1], ['x'], 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99]);
    expect(combineStatements([a, b, c]).text).toBe(all.text);
  });
});
