/**
 * Buffers lent to one response for a large body built by copying (a batch of resolutions), and
 * taken back when the response has finished: Node emits 'finish' once the last write has been
 * handed to the kernel, so nothing reads the buffer after that.
 *
 * Why not a fresh buffer per answer: V8 counts every ArrayBuffer as external memory, and a steady
 * stream of 100 KB answers triggered a scavenge every ~22 MB and, often, a full mark-compact of
 * the heap that holds the L1 cache; malloc's fresh pages also fault on first touch. Measured on
 * POST /api/resolve of 100 hot handles: 172 against 147 us of node CPU a request (docs/architecture.md).
 *
 * A response that never finishes (the client went away) keeps its buffer, and the garbage
 * collector takes it with the response. Idle buffers are bounded in bytes.
 */
import type { ServerResponse } from 'node:http';

/** Smaller bodies come from Node's own pool, which is cheap. */
const MIN_SHIFT = 14; // 16 KiB
const MAX_SHIFT = 23; // 8 MiB
const DEFAULT_MAX_IDLE_BYTES = 32 * 1024 * 1024;

export class ReplyBuffers {
  /** Idle buffers by size class: class c holds buffers of 2^(MIN_SHIFT + c) bytes. */
  private readonly idle: Buffer[][] = Array.from({ length: MAX_SHIFT - MIN_SHIFT + 1 }, () => []);
  private idleBytes = 0;

  constructor(private readonly maxIdleBytes = DEFAULT_MAX_IDLE_BYTES) {}

  /**
   * `size` bytes (uninitialised) for the body of `res`, valid until `res` finishes. Sizes outside
   * the classes get a buffer of their own.
   */
  lend(res: ServerResponse, size: number): Buffer {
    if (size < 1 << MIN_SHIFT || size > 1 << MAX_SHIFT) return Buffer.allocUnsafe(size);
    const shift = 32 - Math.clz32(size - 1); // the smallest power of two >= size
    const list = this.idle[shift - MIN_SHIFT]!;
    let whole = list.pop();
    if (whole) this.idleBytes -= whole.length;
    else whole = Buffer.allocUnsafeSlow(1 << shift);
    const lent = whole;
    res.once('finish', () => this.giveBack(lent, list));
    return whole.subarray(0, size);
  }

  /** Bytes held for reuse. */
  get held(): number {
    return this.idleBytes;
  }

  private giveBack(buffer: Buffer, list: Buffer[]): void {
    if (this.idleBytes + buffer.length > this.maxIdleBytes) return;
    this.idleBytes += buffer.length;
    list.push(buffer);
  }
}

/** The process's lender, shared by every route that builds large bodies. */
export const replyBuffers = new ReplyBuffers();
