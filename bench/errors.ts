/** A failure the bench explains in its message (no stack trace): bad setup, a node that would not start. */
export class BenchError extends Error {}
