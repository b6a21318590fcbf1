/**
 * Progress on stderr: one line rewritten in place on a terminal, one line per update otherwise
 * (a CI log or a test capturing the output). stdout carries only the results table.
 */
const tty = process.stderr.isTTY === true;
let open = false;

export function progress(line: string): void {
  if (tty) {
    process.stderr.write(`\r\x1b[2K${line}`);
    open = true;
  } else {
    process.stderr.write(`${line}\n`);
  }
}

/** Ends the line being rewritten, so the next message starts on its own line. */
progress.done = (): void => {
  if (open) process.stderr.write('\n');
  open = false;
};

/** A message that stays: ends any progress line first. */
export function note(line: string): void {
  progress.done();
  process.stderr.write(`${line}\n`);
}
