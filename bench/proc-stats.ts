/** The node's resident memory and CPU time, read from /proc while a scenario runs (Linux only). */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

const SAMPLE_MS = 500;
// USER_HZ: the unit of utime/stime in /proc/<pid>/stat, 100 on every Linux we run on.
const CLOCK_TICKS = 100;

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** utime + stime of the process, in seconds. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces), counted from field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Busy and total CPU time of the whole machine (every core), in clock ticks, from /proc/stat. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3]! + fields[4]!; // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** CPU used since the meter started, in % of one core. */
export interface CpuUse {
  /** The node process (undefined when it is not ours to read). */
  nodeCpuPct?: number;
  /** This process: autocannon. */
  benchCpuPct: number;
  /**
   * Everything else the machine did meanwhile: Postgres and Redis, but also whatever else runs
   * here, which makes the numbers noisy when it is large on ceiling or resolve-l1.
   */
  otherCpuPct?: number;
}

export function startCpuMeter(nodePid: number | undefined): () => CpuUse {
  const machine = machineTicks();
  const node = nodePid !== undefined ? cpuSeconds(nodePid) : undefined;
  const own = process.cpuUsage();
  const wall = process.hrtime.bigint();
  return () => {
    const wallS = Number(process.hrtime.bigint() - wall) / 1e9;
    const nodeNow = nodePid !== undefined ? cpuSeconds(nodePid) : undefined;
    const ownUsed = process.cpuUsage(own);
    const machineNow = machineTicks();
    const nodeCpuPct = node !== undefined && nodeNow !== undefined ? Math.round(((nodeNow - node) / wallS) * 100) : undefined;
    const benchCpuPct = Math.round(((ownUsed.user + ownUsed.system) / 1e6 / wallS) * 100);
    const machinePct =
      machine && machineNow && machineNow.total > machine.total ? ((machineNow.busy - machine.busy) / (machineNow.total - machine.total)) * 100 * cpus().length : undefined;
    return {
      ...(nodeCpuPct !== undefined ? { nodeCpuPct } : {}),
      benchCpuPct,
      ...(machinePct !== undefined ? { otherCpuPct: Math.max(0, Math.round(machinePct - (nodeCpuPct ?? 0) - benchCpuPct)) } : {}),
    };
  };
}

export interface MemoryPeak {
  /** Highest VmRSS sampled every 500 ms, or the kernel's VmHWM when it was reset at the start. */
  peakRssMiB: number | undefined;
  /** VmRSS at the end. */
  endRssMiB: number | undefined;
}

export class MemorySampler {
  private peakKiB = 0;
  private timer: NodeJS.Timeout | undefined;
  private hwmReset = false;

  constructor(private readonly pid: number) {}

  start(): this {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+): the kernel then tracks
    // this scenario's exact peak, which 500 ms samples could miss. Sampling stays as the fallback.
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.hwmReset = true;
    } catch {
      this.hwmReset = false;
    }
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
    return this;
  }

  private sample(): void {
    const rss = statusKiB(this.pid, 'VmRSS');
    if (rss !== undefined && rss > this.peakKiB) this.peakKiB = rss;
  }

  stop(): MemoryPeak {
    clearInterval(this.timer);
    this.sample();
    const hwm = this.hwmReset ? statusKiB(this.pid, 'VmHWM') : undefined;
    const peak = Math.max(this.peakKiB, hwm ?? 0);
    const end = statusKiB(this.pid, 'VmRSS');
    return { peakRssMiB: peak > 0 ? mib(peak) : undefined, endRssMiB: end !== undefined ? mib(end) : undefined };
  }
}

const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;
