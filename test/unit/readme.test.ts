import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../../src/config.js';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('lists every environment variable with its current default and meaning', () => {
    for (const row of describeConfig()) {
      expect(readme).toContain(`| \`${row.name}\` | \`${row.default}\` | ${row.description} |`);
    }
  });

  it('gives the two commands for a fresh machine', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm test');
  });
});
