import { describe, expect, it } from 'vitest';
import { canonical, generateNodeKey, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, loadNodeKey, parsePublicKey, signRequest, verifySignature } from '../../src/federation/signing.js';
import { ancestors } from '../../src/federation/top-level/service.js';
import { decode, encode, Op } from '../../src/federation/wire.js';

describe('federation signatures', () => {
  for (const algorithm of ['ed25519', 'sm2'] as const) {
    it(`${algorithm}: a signature verifies only for the same method, path, timestamp, node, nonce and body`, () => {
      const pair = generateNodeKey(algorithm);
      const key = loadNodeKey(pair.privatePem);
      expect(key.algorithm).toBe(algorithm);
      const pub = parsePublicKey(pair.publicPem);
      expect(pub.algorithm).toBe(algorithm);
      const body = Buffer.from('batch');
      const h = signRequest(key, 'node-a', 'POST', '/federation/v1/sync', body);
      const sig = Buffer.from(h[HEADER_SIGNATURE], 'base64');
      const ok = (method: string, path: string, ts: string, node: string, nonce: string, b: Buffer) => verifySignature(algorithm, pub.pem, canonical(method, path, ts, node, nonce, b), sig);
      const [ts, nonce] = [h[HEADER_TIMESTAMP], h[HEADER_NONCE]];
      expect(ok('POST', '/federation/v1/sync', ts, 'node-a', nonce, body)).toBe(true);
      expect(ok('POST', '/federation/v1/sync', ts, 'node-a', nonce, Buffer.from('batcH'))).toBe(false);
      expect(ok('GET', '/federation/v1/sync', ts, 'node-a', nonce, body)).toBe(false);
      expect(ok('POST', '/federation/v1/heartbeat', ts, 'node-a', nonce, body)).toBe(false);
      expect(ok('POST', '/federation/v1/sync', String(Number(ts) + 1), 'node-a', nonce, body)).toBe(false);
      expect(ok('POST', '/federation/v1/sync', ts, 'node-b', nonce, body)).toBe(false);
      expect(ok('POST', '/federation/v1/sync', ts, 'node-a', `${nonce}x`, body)).toBe(false);
      const other = generateNodeKey(algorithm);
      expect(verifySignature(algorithm, parsePublicKey(other.publicPem).pem, canonical('POST', '/federation/v1/sync', ts, 'node-a', nonce, body), sig)).toBe(false);
    });
  }

  it('refuses what is not a public key, and a key of another algorithm than named', () => {
    expect(() => parsePublicKey('not a key')).toThrow(/not a public key/);
    expect(() => parsePublicKey(generateNodeKey('ed25519').publicPem, 'sm2')).toThrow(/ed25519, not sm2/);
  });
});

describe('federation wire', () => {
  it('round-trips a SyncBatch with every op, filling defaults', () => {
    const batch = {
      nodeId: 'node-a',
      firstSeq: 7,
      lastSeq: 9,
      events: [
        { seq: 7, op: Op.UPSERT, prefix: '88.118.8', suffix: '部件/1', version: 3, valuesJson: '[{"index":1}]', at: '2026-01-01T00:00:00.000Z', snapshotStart: 0 },
        { seq: 8, op: Op.DELETE, prefix: '88.118.8', suffix: 'X', version: 2, valuesJson: '', at: '2026-01-01T00:00:00.000Z', snapshotStart: 0 },
        { seq: 9, op: Op.SNAPSHOT_END, prefix: '', suffix: '', version: 0, valuesJson: '', at: '2026-01-01T00:00:00.000Z', snapshotStart: 1 },
      ],
    };
    expect(decode('SyncBatch', encode('SyncBatch', batch))).toEqual(batch);
    expect(decode('SyncAck', encode('SyncAck', { ackedSeq: 0, stored: 0 }))).toEqual({ ackedSeq: 0, stored: 0 });
    expect(() => decode('SyncBatch', Buffer.from([0xff, 0xff, 0xff]))).toThrow();
  });

  it('lists a prefix and its ancestors, nearest first', () => {
    expect(ancestors('88.118.8')).toEqual(['88.118.8', '88.118', '88']);
  });
});
