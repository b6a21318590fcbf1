/** DATA_DIR on disk. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * Creates the folder 0700, and any missing parents as mkdir makes them (0755 under the usual
 * umask). `mkdir -p` with a mode gives every parent that mode too: run as root, /srv/snode/data
 * then had a /srv/snode only root could enter, and the embedded Postgres (another user) could not
 * reach its data, with a message blaming the operator's folders.
 */
export async function makeDataDir(dir: string): Promise<void> {
  await mkdir(path.dirname(path.resolve(dir)), { recursive: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
}
