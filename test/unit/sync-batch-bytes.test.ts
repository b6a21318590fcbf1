/** Sync batches are cut by bytes as well as by count, so large records never make one the top-level node refuses. */
import { describe, expect, it } from 'vitest';
import { SYNC_BATCH_MAX_BYTES, withinBytes } from '../../src/federation/sender.js';
import type { SyncEvent } from '../../src/federation/wire.js';

const event = (seq: number, valueBytes: number): SyncEvent => ({
  seq,
  op: 1 as SyncEvent['op'],
  prefix: '88.118.8',
  suffix: `BIG-${seq}`,
  version: 1,
  valuesJson: `[{"index":1,"type":"DATA","data":{"format":"string","value":"${'x'.repeat(valueBytes)}"}}]`,
  at: '2026-11-30T00:00:00.000Z',
  snapshotStart: 0,
});

describe('sync batch bytes', () => {
  it('keeps a batch of small records whole', () => {
    const events = Array.from({ length: 1000 }, (_, i) => event(i + 1, 100));
    expect(withinBytes(events, SYNC_BATCH_MAX_BYTES)).toBe(events);
  });

  it('cuts a batch of large records under the budget, in order, and never sends none', () => {
    const events = Array.from({ length: 70 }, (_, i) => event(i + 1, 1_000_000)); // ~70 MB: over the top-level's 64 MiB
    const head = withinBytes(events, SYNC_BATCH_MAX_BYTES);
    expect(head.length).toBeGreaterThan(0);
    expect(head.length).toBeLessThan(events.length);
    expect(head.map((e) => e.seq)).toEqual(events.slice(0, head.length).map((e) => e.seq));
    expect(head.reduce((n, e) => n + Buffer.byteLength(e.valuesJson), 0)).toBeLessThanOrEqual(SYNC_BATCH_MAX_BYTES);
    expect(withinBytes([event(1, 20_000_000)], SYNC_BATCH_MAX_BYTES)).toHaveLength(1);
    // Multi-byte text counts by its UTF-8 bytes.
    const wide = { ...event(1, 0), valuesJson: '汉'.repeat(4_000_000) }; // 12 MB of UTF-8
    expect(withinBytes([wide, wide], SYNC_BATCH_MAX_BYTES)).toHaveLength(1);
  });
});
