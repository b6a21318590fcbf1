/** Timers a background loop can wait on and that stop() cuts short. */
export class Sleeper {
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  stopped = false;

  sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }

  /** Ends the current wait early (new work, or stopping). */
  poke(): void {
    clearTimeout(this.timer);
    this.wake?.();
  }

  stop(): void {
    this.stopped = true;
    this.poke();
  }
}

/** Exponential backoff with full jitter: a random delay up to base * 2^(failures-1), capped. */
export function backoff(failures: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
  return Math.max(baseMs / 2, Math.random() * ceiling);
}
