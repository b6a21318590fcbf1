/** Every command's --help (walked from the command tree itself, so new commands are covered) lists its options, its environment variables and the exit codes. */
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli.js';
import { ConfigSchema } from '../../src/config.js';

function helpOf(command: Command): string {
  let text = '';
  command.configureOutput({ writeOut: (s) => { text += s; }, writeErr: (s) => { text += s; } });
  command.outputHelp();
  return text;
}

function walk(command: Command, path: string[], out: Array<{ path: string; help: string; command: Command }>): void {
  out.push({ path: path.join(' '), help: helpOf(command), command });
  for (const sub of command.commands) walk(sub, [...path, sub.name()], out);
}

describe('snode --help', () => {
  const all: Array<{ path: string; help: string; command: Command }> = [];
  walk(buildProgram(), [], all);

  it('reaches every command', () => {
    const paths = all.map((c) => c.path);
    for (const command of ['', 'serve', 'migrate', 'healthcheck', 'config', 'admin enterprise create', 'admin key revoke', 'admin register-node', 'federation public-key', 'federation verify', 'federation resync', 'audit verify', 'stats report', 'import']) {
      expect(paths).toContain(command);
    }
  });

  it('lists, for every command, its options, the environment variables it reads and the exit codes', () => {
    const names = new Set(Object.keys(ConfigSchema.properties));
    for (const { path, help, command } of all) {
      expect(help, path || 'snode').toContain('Options:');
      for (const option of command.options) expect(help, `${path}: ${option.flags}`).toContain(option.flags);
      expect(help, path || 'snode').toContain('Exit codes: 0 success, 1 the operation failed');
      expect(help, path || 'snode').toContain('2 bad usage or configuration');
      if (path === '') {
        expect(help).toContain('snode config');
        continue;
      }
      const listed = help.split('Environment:')[1];
      expect(listed, path).toBeDefined();
      const variables = [...listed!.matchAll(/^ {2}([A-Z][A-Z0-9_]+) /gm)].map((m) => m[1]!);
      if (!listed!.startsWith(' none.')) expect(variables.length, path).toBeGreaterThan(0);
      for (const variable of variables) expect(names.has(variable), `${path}: ${variable}`).toBe(true);
    }
  });

  it('names what each command needs: the database for admin commands, every variable for serve', () => {
    const help = (path: string) => all.find((c) => c.path === path)!.help;
    for (const path of ['admin key create', 'admin prefix disable', 'audit verify', 'stats report', 'import', 'migrate']) {
      expect(help(path), path).toContain('DATABASE_URL');
      expect(help(path), path).toContain('API_KEY_SECRET');
    }
    for (const name of Object.keys(ConfigSchema.properties)) expect(help('serve')).toContain(name);
    expect(help('import')).toContain('REDIS_URL');
    expect(help('healthcheck')).toContain('PORT');
    expect(help('config')).toContain('Environment: none.');
  });
});
