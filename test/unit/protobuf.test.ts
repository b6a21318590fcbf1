import { describe, expect, it } from 'vitest';
import type { HandleValue } from '../../src/handle/values.js';
import {
  PROTOBUF_TYPE,
  decodeBatchRequest,
  decodeBatchResponse,
  decodeResolution,
  encodeBatch,
  encodeResolution,
  protobufTypes,
  type ResolutionBody,
} from '../../src/resolver/protobuf.js';

const ts = '2026-11-29T00:00:00.000Z';

const values: HandleValue[] = [
  { index: 1, type: 'URL', data: { format: 'string', value: 'https://例子.cn/产品?id=1' }, ttl: 86400, timestamp: ts },
  { index: 2, type: 'DESC', data: { format: 'string', value: '工业互联网标识解析 二级节点 🏭' }, ttl: 0, timestamp: ts, permissions: '1110' },
  { index: 3, type: 'EMPTY', data: { format: 'string', value: '' }, ttl: 2147483647, timestamp: ts },
  { index: 4, type: 'BLOB', data: { format: 'base64', value: 'aGVsbG8=' }, ttl: 60, timestamp: ts, permissions: '1100' },
  { index: 5, type: 'HS_PUBKEY', data: { format: 'key', value: 'AAAAAQ==公钥' }, ttl: 60, timestamp: ts },
  { index: 6, type: 'HS_VLIST', data: { format: 'vlist', value: [{ handle: '88.118.8/A', index: 300 }, { handle: '88.118.8/乙', index: 0 }] }, ttl: 60, timestamp: ts },
  { index: 7, type: 'HS_SITE', data: { format: 'site', value: { version: 1, servers: [{ address: '10.0.0.1', 名称: '节点' }], nested: { empty: [] } } }, ttl: 60, timestamp: ts },
  { index: 100, type: 'HS_ADMIN', data: { format: 'admin', value: { handle: '0.NA/88.118.8', index: 200, permissions: '011111110011' } }, ttl: 86400, timestamp: ts },
];

const success: ResolutionBody = { responseCode: 1, handle: '88.118.8/产品-2024-000001', values };
const notFound: ResolutionBody = { responseCode: 100, handle: '88.118.8/NOPE', message: 'Handle not found', code: 'HANDLE_NOT_FOUND' };
const valuesNotFound: ResolutionBody = { responseCode: 200, handle: '88.118.8/X', values: [] };

/** The JSON text of a body: equal JSON text means equal keys, key order and values. */
const json = (body: unknown) => JSON.stringify(body);

describe('protobuf resolution messages', () => {
  it('names its media type', () => {
    expect(PROTOBUF_TYPE).toBe('application/x-protobuf');
  });

  it('round-trips a record with every data format, Chinese text and empty strings', () => {
    const bytes = encodeResolution(success);
    expect(Buffer.isBuffer(bytes)).toBe(true);
    const back = decodeResolution(bytes);
    expect(back).toEqual(success);
    expect(json(back)).toBe(json(success));
  });

  it('sends string and base64 as text, structured formats as JSON text', () => {
    const message = protobufTypes.Resolution.toObject(protobufTypes.Resolution.decode(encodeResolution(success)), { oneofs: true }) as {
      values: { format: string; data: string; text?: string; json?: string }[];
    };
    const [url, , empty, blob, key, vlist, site, admin] = message.values;
    expect(url).toMatchObject({ format: 'string', data: 'text', text: 'https://例子.cn/产品?id=1' });
    expect(empty).toMatchObject({ format: 'string', data: 'text', text: '' });
    expect(blob).toMatchObject({ format: 'base64', data: 'text', text: 'aGVsbG8=' });
    expect(key).toMatchObject({ format: 'key', data: 'json', json: '"AAAAAQ==公钥"' });
    expect(admin).toMatchObject({ format: 'admin', data: 'json', json: '{"handle":"0.NA/88.118.8","index":200,"permissions":"011111110011"}' });
    expect(JSON.parse(vlist!.json!)).toEqual(values[5]!.data.value);
    expect(site).toMatchObject({ format: 'site', data: 'json' });
  });

  it('keeps permissions absent when absent and present when present, even at the default', () => {
    const back = decodeResolution(encodeResolution(success)).values!;
    expect('permissions' in back[0]!).toBe(false);
    expect(back[1]!.permissions).toBe('1110');
    expect(back[3]!.permissions).toBe('1100');
  });

  it('gives back an empty values list for responseCode 200 and 1', () => {
    expect(json(decodeResolution(encodeResolution(valuesNotFound)))).toBe(json(valuesNotFound));
    const emptySuccess: ResolutionBody = { responseCode: 1, handle: '88.118.8/X', values: [] };
    expect(json(decodeResolution(encodeResolution(emptySuccess)))).toBe(json(emptySuccess));
  });

  it('round-trips error answers without values, with and without a code', () => {
    expect(json(decodeResolution(encodeResolution(notFound)))).toBe(json(notFound));
    const invalid: ResolutionBody = { responseCode: 102, handle: 'bad handle', message: '标识格式错误' };
    const back = decodeResolution(encodeResolution(invalid));
    expect(json(back)).toBe(json(invalid));
    expect('values' in back).toBe(false);
    expect('code' in back).toBe(false);
  });

  it('keeps an empty message present', () => {
    const body: ResolutionBody = { responseCode: 2, handle: 'h/x', message: '' };
    expect(json(decodeResolution(encodeResolution(body)))).toBe(json(body));
  });

  it('rejects values it cannot encode and bytes that are not a Resolution', () => {
    const bad = { index: 1, type: 'X', data: { format: 'string', value: 42 }, ttl: 1, timestamp: ts } as unknown as HandleValue;
    expect(() => encodeResolution({ responseCode: 1, handle: 'h/x', values: [bad] })).toThrow(/string/);
    expect(() => decodeResolution(Uint8Array.of(0x1a, 0x05, 0x08))).toThrow(/malformed Resolution/);
    // A value with neither text nor json.
    const noData = protobufTypes.Resolution.encode({ responseCode: 1, handle: 'h/x', values: [{ index: 1, type: 'X', format: 'string' }] }).finish();
    expect(() => decodeResolution(noData)).toThrow(/no data/);
    const unknownFormat = protobufTypes.Resolution.encode({ responseCode: 1, handle: 'h/x', values: [{ index: 1, type: 'X', format: 'hex', text: '00' }] }).finish();
    expect(() => decodeResolution(unknownFormat)).toThrow(/unknown data format/);
  });
});

describe('protobuf batch messages', () => {
  const bodies: ResolutionBody[] = [success, notFound, valuesNotFound, { responseCode: 1, handle: '88.118.8/短', values: [values[0]!] }];

  it('frames encoded Resolutions into exactly the bytes protobufjs gives the whole message', () => {
    const framed = encodeBatch(bodies.map(encodeResolution));
    const whole = protobufTypes.ResolveBatchResponse.encode({ results: bodies.map((b) => protobufTypes.Resolution.decode(encodeResolution(b))) }).finish();
    expect(Buffer.compare(framed, Buffer.from(whole))).toBe(0);
    expect(decodeBatchResponse(framed).map(json)).toEqual(bodies.map(json));
  });

  it('writes multi-byte lengths for large parts and handles empty parts and an empty batch', () => {
    const big: ResolutionBody = { responseCode: 1, handle: '88.118.8/BIG', values: [{ ...values[1]!, data: { format: 'string', value: '长'.repeat(50_000) } }] };
    const parts = [encodeResolution(big), new Uint8Array(0), encodeResolution(notFound)];
    expect(parts[0]!.length).toBeGreaterThan(0x3fff); // a 3-byte varint length
    const framed = encodeBatch(parts);
    const whole = protobufTypes.ResolveBatchResponse.encode({ results: parts.map((p) => protobufTypes.Resolution.decode(p)) }).finish();
    expect(Buffer.compare(framed, Buffer.from(whole))).toBe(0);
    const back = decodeBatchResponse(framed);
    expect(back).toHaveLength(3);
    expect(back[0]).toEqual(big);
    expect(back[1]).toEqual({ responseCode: 0, handle: '' });
    expect(back[2]).toEqual(notFound);
    expect(encodeBatch([]).length).toBe(0);
    expect(decodeBatchResponse(encodeBatch([]))).toEqual([]);
  });

  it('decodes a batch request in order, duplicates and Chinese included', () => {
    const handles = ['88.118.8/A', '88.118.8/产品', '88.118.8/A', ''];
    const bytes = protobufTypes.ResolveBatchRequest.encode({ handles }).finish();
    expect(decodeBatchRequest(bytes)).toEqual(handles);
    expect(decodeBatchRequest(new Uint8Array(0))).toEqual([]);
  });

  it('rejects malformed batch requests with a clear error', () => {
    const malformed = [
      Uint8Array.of(0x0a, 0x05, 0x61), // length runs past the end
      Uint8Array.of(0x0a), // tag without a length
      Uint8Array.of(0x0a, 0x02, 0xc3, 0x28), // invalid UTF-8
      Uint8Array.of(0x0f), // wire type 7 does not exist
      Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // varint too long
    ];
    for (const bytes of malformed) {
      expect(() => decodeBatchRequest(bytes)).toThrow(/^malformed ResolveBatchRequest: /);
    }
  });
});
