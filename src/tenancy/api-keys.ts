/** API key material: generated once, shown once, stored only as HMAC-SHA256 under the server secret. */
import { createHmac, randomBytes } from 'node:crypto';

export const ROLES = ['admin', 'enterprise', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

const KEY_PREFIX = 'snk_';
const KEY_FORMAT = /^snk_[A-Za-z0-9_-]{43}$/;

export function generateApiKey(): { key: string; hint: string } {
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  return { key, hint: key.slice(0, 10) };
}

export function hashApiKey(secret: Buffer, key: string): Buffer {
  return createHmac('sha256', secret).update(key, 'utf8').digest();
}

/** Cheap shape check so garbage never costs a database round trip. */
export function looksLikeApiKey(key: string): boolean {
  return KEY_FORMAT.test(key);
}
