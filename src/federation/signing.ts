/**
 * Request signatures of the federation link. A request is signed over its method, path,
 * timestamp, node id and the SHA-256 of its body; Ed25519 signs the canonical string itself,
 * SM2 signs it with SM3 as the digest (both through node:crypto).
 */
import { createHash, createPrivateKey, randomBytes, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export type KeyAlgorithm = 'ed25519' | 'sm2';
export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['ed25519', 'sm2'];

export const HEADER_NODE = 'x-snode-node';
export const HEADER_TIMESTAMP = 'x-snode-timestamp';
export const HEADER_SIGNATURE = 'x-snode-signature';
export const HEADER_NONCE = 'x-snode-nonce';

export interface SignedHeaders {
  [HEADER_NODE]: string;
  [HEADER_TIMESTAMP]: string;
  [HEADER_NONCE]: string;
  [HEADER_SIGNATURE]: string;
}

export function bodyDigest(body: Uint8Array | undefined): string {
  return createHash('sha256').update(body ?? Buffer.alloc(0)).digest('hex');
}

/** The signed string; the nonce makes two otherwise equal requests in one millisecond differ. */
export function canonical(method: string, path: string, timestamp: string, nodeId: string, nonce: string, body: Uint8Array | undefined): Buffer {
  return Buffer.from(`SNODE-SIG-V1\n${method.toUpperCase()}\n${path}\n${timestamp}\n${nodeId}\n${nonce}\n${bodyDigest(body)}`);
}

const digestOf = (algorithm: KeyAlgorithm): string | null => (algorithm === 'sm2' ? 'sm3' : null);

/**
 * Which algorithm a key is for. Node 20 does not name SM2 keys read back from PEM (their type is
 * undefined), so anything that is not Ed25519 is tried as SM2 by a sign/verify round.
 */
export function keyAlgorithm(key: KeyObject): KeyAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === undefined || (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'SM2')) return 'sm2';
  throw new Error(`unsupported key type ${key.asymmetricKeyType}: use an Ed25519 or SM2 key`);
}

export interface NodeKey {
  algorithm: KeyAlgorithm;
  privateKey: KeyObject;
  publicKeyPem: string;
}

export function generateNodeKey(algorithm: KeyAlgorithm): { privatePem: string; publicPem: string } {
  const pair = algorithm === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'SM2' });
  return {
    privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Reads a PKCS#8 PEM private key; its public half is what `register-node` is given. */
export function loadNodeKey(privatePem: string, algorithm?: KeyAlgorithm): NodeKey {
  const privateKey = createPrivateKey(privatePem);
  const detected = algorithm ?? keyAlgorithm(privateKey);
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  // An SM2 guess is proven by a round trip, so a key of another curve fails here, not at the peer.
  const probe = Buffer.from('snode key check');
  if (!verify(digestOf(detected), probe, createPublicKey(publicKeyPem), sign(digestOf(detected), probe, privateKey))) {
    throw new Error(`the key is not a working ${detected} key`);
  }
  return { algorithm: detected, privateKey, publicKeyPem };
}

/** Parses a public key PEM for `register-node`; throws a readable message when it is not one. */
export function parsePublicKey(pem: string, algorithm?: KeyAlgorithm): { algorithm: KeyAlgorithm; pem: string } {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new Error(`not a public key in PEM form: ${(err as Error).message}`);
  }
  if (key.type !== 'public') throw new Error('a private key was given: give the public key');
  const detected = keyAlgorithm(key);
  if (algorithm && algorithm !== detected) throw new Error(`the key is ${detected}, not ${algorithm}`);
  return { algorithm: detected, pem: key.export({ type: 'spki', format: 'pem' }).toString() };
}

export function signRequest(key: NodeKey, nodeId: string, method: string, path: string, body: Uint8Array | undefined, now = Date.now()): SignedHeaders {
  const timestamp = String(now);
  const nonce = randomBytes(12).toString('base64url');
  const signature = sign(digestOf(key.algorithm), canonical(method, path, timestamp, nodeId, nonce, body), key.privateKey).toString('base64');
  return { [HEADER_NODE]: nodeId, [HEADER_TIMESTAMP]: timestamp, [HEADER_NONCE]: nonce, [HEADER_SIGNATURE]: signature };
}

const publicKeys = new Map<string, KeyObject>();

export function verifySignature(algorithm: KeyAlgorithm, publicPem: string, data: Buffer, signature: Buffer): boolean {
  let key = publicKeys.get(publicPem);
  if (!key) {
    key = createPublicKey(publicPem);
    publicKeys.set(publicPem, key);
  }
  try {
    return verify(digestOf(algorithm), data, key, signature);
  } catch {
    return false;
  }
}
