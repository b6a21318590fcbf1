/** Loads <prefix>/BENCH-0 .. BENCH-<count-1> through POST /bench/seed, in chunks, resumably. */
import { BenchError } from './errors.js';
import { progress } from './progress.js';

const CHUNK = 200_000;

export interface SeedOutcome {
  count: number;
  inserted: number;
  /** Chunks found complete already (their last identifier resolves) and not sent again. */
  skippedChunks: number;
  seconds: number;
}

async function exists(baseUrl: string, handle: string, signal: AbortSignal | undefined): Promise<boolean> {
  // auth=true skips every cache: a cached not-found must not hide a row, nor a cached record a gap.
  const response = await fetch(`${baseUrl}/api/handles/${handle}?auth=true`, { signal });
  await response.arrayBuffer();
  if (response.status !== 200 && response.status !== 404) throw new BenchError(`GET /api/handles/${handle} answered ${response.status}`);
  return response.status === 200;
}

/** `signal` (Ctrl-C) stops it between chunks and stops waiting for the chunk in flight (what the node commits of it, a rerun finds). */
export async function seed(baseUrl: string, key: string | undefined, prefix: string, count: number, signal?: AbortSignal): Promise<SeedOutcome> {
  const started = Date.now();
  let inserted = 0;
  let skippedChunks = 0;
  for (let start = 0; start < count; start += CHUNK) {
    signal?.throwIfAborted();
    const size = Math.min(CHUNK, count - start);
    // The seed route inserts in ascending order, so a chunk whose last identifier exists is complete:
    // a rerun (or a resumed 10M seed) costs one GET per chunk.
    if (await exists(baseUrl, `${prefix}/BENCH-${start + size - 1}`, signal)) {
      skippedChunks += 1;
    } else {
      if (!key) throw new BenchError(`${prefix}/BENCH-${start + size - 1} is not seeded and there is no admin key to seed with: pass --key`);
      const response = await fetch(`${baseUrl}/bench/seed`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prefix, count: size, start }),
        signal,
      });
      const text = await response.text();
      if (response.status !== 200) throw new BenchError(`POST /bench/seed answered ${response.status}: ${text.slice(0, 300)}`);
      inserted += (JSON.parse(text) as { inserted: number }).inserted;
    }
    progress(`seeding ${prefix}/BENCH-*: ${(start + size).toLocaleString('en')}/${count.toLocaleString('en')}, ${inserted.toLocaleString('en')} inserted, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  progress.done();
  return { count, inserted, skippedChunks, seconds: (Date.now() - started) / 1000 };
}
