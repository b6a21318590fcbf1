/**
 * The wire contract of proto/sync.proto, loaded by reflection like proto/resolution.proto. The
 * plain objects below mirror the messages (camelCase fields; uint64 as number, which holds every
 * sequence number below 2^53).
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const PROTOBUF_TYPE = 'application/x-protobuf';

// src/federation/ and dist/federation/ are both two levels below the root, where proto/ lives.
const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/sync.proto', import.meta.url)));

export interface NodeIdentity {
  nodeId: string;
  nodePrefix: string;
  baseUrl: string;
  version: string;
}
export interface PrefixRegistration {
  node: NodeIdentity;
  prefixes: string[];
}
export interface PrefixRegistrationAck {
  prefixes: string[];
}
export interface PrefixLookupAnswer {
  prefix: string;
  homedPrefix: string;
  node: NodeIdentity;
  state: string;
}
export const Op = { UPSERT: 1, DELETE: 2, SNAPSHOT_END: 3 } as const;
export type OpCode = (typeof Op)[keyof typeof Op];
export interface SyncEvent {
  seq: number;
  op: OpCode;
  prefix: string;
  suffix: string;
  version: number;
  valuesJson: string;
  at: string;
  snapshotStart: number;
}
export interface SyncBatch {
  nodeId: string;
  firstSeq: number;
  lastSeq: number;
  events: SyncEvent[];
}
export interface SyncAck {
  ackedSeq: number;
  stored: number;
}
export interface NodeStatus {
  nodeId: string;
  version: string;
  sentAt: string;
  identifiers: number;
  registrationsToday: number;
  resolutionsToday: number;
  outboxBacklog: number;
  oldestUnsentAgeS: number;
  ackedSeq: number;
}
export interface HeartbeatAck {
  ackedSeq: number;
}
export interface PrefixDigest {
  prefix: string;
  count: number;
  digest: string;
}
export interface VerifyAnswer {
  prefixes: PrefixDigest[];
  ackedSeq: number;
}

interface Messages {
  PrefixRegistration: PrefixRegistration;
  PrefixRegistrationAck: PrefixRegistrationAck;
  PrefixLookupAnswer: PrefixLookupAnswer;
  SyncBatch: SyncBatch;
  SyncAck: SyncAck;
  NodeStatus: NodeStatus;
  HeartbeatAck: HeartbeatAck;
  VerifyAnswer: VerifyAnswer;
}
export type MessageName = keyof Messages;

const types = new Map<string, protobuf.Type>();
function type(name: MessageName): protobuf.Type {
  let found = types.get(name);
  if (!found) {
    found = root.lookupType(`snode.sync.v1.${name}`);
    types.set(name, found);
  }
  return found;
}

export function encode<N extends MessageName>(name: N, message: Messages[N]): Buffer {
  const bytes = type(name).encode(type(name).fromObject(message as unknown as Record<string, unknown>)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes and fills defaults (proto3 leaves absent scalars out); throws on malformed bytes. */
export function decode<N extends MessageName>(name: N, bytes: Uint8Array): Messages[N] {
  const t = type(name);
  return t.toObject(t.decode(bytes), { longs: Number, enums: Number, defaults: true, arrays: true }) as Messages[N];
}
