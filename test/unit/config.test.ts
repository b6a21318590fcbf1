import { describe, expect, it } from 'vitest';
import { ConfigError, ConfigSchema, describeConfig, loadConfig } from '../../src/config.js';

describe('configuration', () => {
  it('has defaults for everything', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(8080);
    expect(config.DATA_DIR).toBe('./.snode');
    expect(config.NODE_PREFIX).toBe('88.118');
    expect(config.DATABASE_URL).toBe('');
    expect(config.MAX_VALUES_PER_RECORD).toBe(200);
    expect(config.MAX_VALUE_BYTES).toBe(32768);
    expect(config.BODY_LIMIT_BYTES).toBe(262144);
  });

  it('coerces numbers and normalises the node prefix', () => {
    const config = loadConfig({ PORT: '9000', NODE_PREFIX: '88.abc' });
    expect(config.PORT).toBe(9000);
    expect(config.NODE_PREFIX).toBe('88.ABC');
  });

  it('stops with a message naming each bad variable and its value', () => {
    const attempt = () => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x' });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (err) {
      const message = (err as Error).message;
      expect(message).toMatch(/PORT: .*"eighty"/);
      expect(message).toMatch(/LOG_LEVEL: .*"loud"/);
      expect(message).toMatch(/DATABASE_URL: .*"mysql:\/\/x"/);
    }
    expect(() => loadConfig({ NODE_PREFIX: '88..1' })).toThrow(/NODE_PREFIX/);
    expect(() => loadConfig({ API_KEY_SECRET: 'short' })).toThrow(/API_KEY_SECRET/);
    expect(() => loadConfig({ PORT: '70000' })).toThrow(/PORT/);
  });

  it('never echoes a secret or the credentials of a URL', () => {
    const message = (() => {
      try {
        loadConfig({ API_KEY_SECRET: 'my-real-production-secret-31ch', DATABASE_URL: 'postgresql+asyncpg://snode:S3cretPassw0rd@db/snode', PORT: 'x' });
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    expect(message).toMatch(/API_KEY_SECRET/);
    expect(message).toMatch(/DATABASE_URL: .*\*\*\*@db\/snode/);
    expect(message).not.toContain('my-real-production-secret');
    expect(message).not.toContain('S3cretPassw0rd');
  });

  it('checks TRUST_PROXY entries when the configuration is read, not when the server is built', () => {
    for (const good of ['', 'true', '2', '10.0.0.1', '10.0.0.0/8, loopback', '::1,fd00::/8']) expect(loadConfig({ TRUST_PROXY: good }).TRUST_PROXY, good).toBe(good);
    for (const bad of ['yes', 'on', '10.0.0.0/33', '10.0.0.1/8/1', '300.1.1.1']) expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/TRUST_PROXY/);
  });

  it('shows only the length of a URL variable that is not a URL (it may hold a password anywhere)', () => {
    for (const value of ['host=db user=snode password=S3cretPw dbname=snode', 'snode:S3cretPw@db/snode']) {
      let message = '';
      try {
        loadConfig({ DATABASE_URL: value });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, value).toMatch(/DATABASE_URL/);
      expect(message, value).toMatch(/characters, not shown/);
      expect(message, value).not.toContain('S3cretPw');
    }
  });

  it('describes every variable', () => {
    const rows = describeConfig();
    expect(rows.map((r) => r.name)).toEqual(Object.keys(ConfigSchema.properties));
    for (const row of rows) expect(row.description.length).toBeGreaterThan(10);
    for (const name of ['HOST', 'PORT', 'DATABASE_URL', 'REDIS_URL', 'DATA_DIR', 'NODE_PREFIX', 'NODE_ID', 'LOG_LEVEL']) {
      expect(rows.some((r) => r.name === name)).toBe(true);
    }
  });
});
