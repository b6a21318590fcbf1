/** `snode qr HANDLE`: the same QR code as GET /{handle}?qr=..., made on the command line from the node's database. */
import { writeFile } from 'node:fs/promises';
import type pg from 'pg';
import { isPrefixUnder } from '../handle/handle.js';
import { ConfigError, type Config } from '../config.js';
import { errors } from '../infra/errors.js';
import { parseHandleOrThrow } from '../infra/handle-http.js';
import type { Logger } from '../infra/logger.js';
import { publicBaseUrl } from '../infra/public-url.js';
import { buildWriters } from '../registry/writers.js';
import { renderQr, resolutionUrl, type QrEcc, type QrFormat } from './qr.js';

export interface QrCommandOptions {
  format: QrFormat;
  size: number;
  ecc: QrEcc;
  /** A file to write; otherwise the image goes to standard output. */
  out?: string;
}

/** Renders the code of a handle the node holds; returns the URL it encodes. */
export async function runQrCommand(config: Config, pool: pg.Pool, log: Logger, handleInput: string, options: QrCommandOptions): Promise<string> {
  const handle = parseHandleOrThrow(handleInput);
  const base = publicBaseUrl(config, config.PORT === 0 ? undefined : config.PORT);
  if (!base) throw new ConfigError('PUBLIC_URL is empty and PORT is 0: set PUBLIC_URL to the address partners resolve this node at');
  if (!config.PUBLIC_URL) {
    process.stderr.write(`snode: PUBLIC_URL is not set: the code holds ${base}/..., the address this node would listen at; set PUBLIC_URL to the address partners resolve it at\n`);
  }
  const { registry } = buildWriters(config, pool, { invalidate: async () => undefined }, log);
  // As the node: no code for an identifier it does not hold.
  if (!isPrefixUnder(handle.prefix, config.NODE_PREFIX) || !(await registry.find(handle.prefix, handle.suffix))) {
    throw errors.notFound('HANDLE_NOT_FOUND', `handle ${handle.handle} is not held by this node: no QR code for it`);
  }
  const text = resolutionUrl(base, handle);
  const image = renderQr(text, options);
  if (options.out) await writeFile(options.out, image.body);
  else process.stdout.write(image.body);
  return text;
}
