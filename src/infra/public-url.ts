/** The base URL partners reach this node at: PUBLIC_URL, else http(s)://HOST:PORT as it listens. */
import type { Config } from '../config.js';

/** `port`: the port the server listens on (PORT may be 0); undefined before it listens. */
export function publicBaseUrl(config: Pick<Config, 'PUBLIC_URL' | 'HOST' | 'TLS_CERT'>, port: number | undefined): string {
  if (config.PUBLIC_URL) return config.PUBLIC_URL.replace(/\/+$/, '');
  if (port === undefined) return '';
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  return `${config.TLS_CERT ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
