/** The node's federation key: FEDERATION_KEY_FILE, or DATA_DIR/federation-key.pem generated once. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../infra/logger.js';
import { generateNodeKey, loadNodeKey, type KeyAlgorithm, type NodeKey } from './signing.js';

export const keyFile = (config: Config): string => path.resolve(config.FEDERATION_KEY_FILE || path.join(config.DATA_DIR, 'federation-key.pem'));

export async function loadOrCreateNodeKey(config: Config, log: Logger): Promise<NodeKey> {
  const file = keyFile(config);
  let pem: string | undefined;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || config.FEDERATION_KEY_FILE) {
      throw new Error(`cannot read the federation key ${file}: ${(err as Error).message}`);
    }
  }
  if (pem === undefined) {
    const generated = generateNodeKey(config.FEDERATION_KEY_ALGORITHM as KeyAlgorithm);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      await writeFile(file, generated.privatePem, { mode: 0o600, flag: 'wx' });
      await writeFile(file.replace(/\.pem$/, '') + '.pub.pem', generated.publicPem, { mode: 0o644 });
      log.info({ file, algorithm: config.FEDERATION_KEY_ALGORITHM }, 'generated the federation key; give its public half to the top-level node (snode admin register-node)');
      pem = generated.privatePem;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      pem = await readFile(file, 'utf8');
    }
  }
  try {
    return loadNodeKey(pem);
  } catch (err) {
    throw new Error(`the federation key ${file} is not a usable Ed25519 or SM2 private key: ${(err as Error).message}`);
  }
}
