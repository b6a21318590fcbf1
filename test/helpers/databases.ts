/** Each test file gets its own database on the real Postgres, dropped afterwards. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { TEST_DATABASE_URL } from './env.js';

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `snode_t_${randomBytes(6).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => admin((c) => dropWhenClosed(c, name)),
  };
}

/**
 * Drops the database once the connections the test closed are gone. A pool's end() resolves
 * before its clients' sockets close; dropping WITH (FORCE) at once terminated those still ending
 * (57P01), and a test pool without an 'error' listener turned that into an unhandled error
 * (seen in CI under load). Only connections still open after five seconds are forced out.
 */
async function dropWhenClosed(c: pg.Client, name: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '55006') throw err; // 55006: in use by other sessions
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
