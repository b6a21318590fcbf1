/** Scenario results: ratios to the ceiling, the targets they are judged against, the table, the file. */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Percentiles } from './histogram.js';
import type { PairDetail } from './pair.js';
import type { ScenarioName } from './scenarios.js';
import type { StatsDetail } from './stats.js';
import type { DrainDetail } from './sync-drain.js';
import type { ImportDetail } from './import.js';

export interface ScenarioResult {
  name: ScenarioName;
  /** Node configuration it ran on ("default", "l1-off", "no-cache", or "url" with --url). */
  config: string;
  status: 'ok' | 'skipped' | 'failed';
  /** Why it was skipped or failed, or a caveat about how it ran. */
  note?: string;
  reqPerSec?: number;
  identifiersPerSec?: number;
  requests?: number;
  durationS?: number;
  latencyMs?: Percentiles;
  statuses?: Record<string, number>;
  expectedStatus?: number;
  /** Connection errors + timeouts + answers other than the expected status. */
  errors?: number;
  errorDetail?: { connErrors: number; timeouts: number; unexpectedStatus: number; connErrorKinds: Record<string, number> };
  /** The node's last log lines, when requests failed. */
  nodeLog?: string[];
  /** Highest resident memory of the node during warm-up and measurement. */
  peakRssMiB?: number;
  /** CPU used during the measurement, in % of one core. */
  nodeCpuPct?: number;
  benchCpuPct?: number;
  /** The rest of the machine (Postgres, Redis, anything else running), same unit. */
  otherCpuPct?: number;
  /** The pass that loaded the set into the measured tier (its peak RSS is not the scenario's). */
  warm?: { requests: number; seconds: number; via: string; peakRssMiB?: number };
  /** Wall-clock seconds the scenario took, node starts and seeding included. */
  elapsedS?: number;
  /** resolve-l1-nocount: both nodes' slices (the row's own figures are the measured node's). */
  pair?: PairDetail;
  /**
   * Scenarios judged against the ceiling: the ceiling measured on the same node in slices
   * interleaved with the scenario's (ABBA); the ratios are taken against it.
   */
  interleavedCeiling?: {
    /** ceiling, or the scenario's own yardstick (register-batch: copy). */
    label?: string;
    /** Rows per yardstick request (a COPY of 1,000 rows); ratios are taken per identifier. */
    identifiersPerRequest?: number;
    reqPerSec: number;
    requests: number;
    seconds: number;
    latencyMs: Percentiles;
    sliceReqPerSec: number[];
    /** The scenario's own slices, in the same order. */
    scenarioSliceReqPerSec: number[];
    slices: number;
    sliceSeconds: number;
    order: Array<[string, string]>;
    errors: number;
  };
  /** import: the job's lines and timings (the judged figure is peakRssMiB). */
  import?: ImportDetail;
  /** sync-drain: registration and drain rates of the same backlog. */
  drain?: DrainDetail;
  /** stats: the seed, the yardstick runs and each route's timing. */
  stats?: StatsDetail;
  ratio?: number;
  p99Ratio?: number;
  target?: { rule: string; pass: boolean | undefined; why?: string };
}

const RSS_LIMIT_MIB = 300;
/** resolve-l1-nocount: counting resolutions may cost at most 3% of resolve-l1's throughput. */
const COUNTING_MIN = 0.97;
const RSS_MEANT_AT_SEED = 1_000_000;
const IMPORT_MEANT_AT_LINES = 1_000_000;
/** write-audit: writes with the audit log on at least 0.8 x writes with it off (issue 5). */
const AUDIT_MIN = 0.8;

type Rule = { rule: string; judge(r: ScenarioResult, seeded: number, importLines: number): { pass: boolean | undefined; why?: string } };

const fmtRatio = (x: number | undefined): string => (x === undefined ? 'n/a' : x.toFixed(2));

const TARGETS: Partial<Record<ScenarioName, Rule>> = {
  'sync-drain': {
    rule: 'drain rate >= 0.5 x registration rate (PUT), verify in sync',
    judge: (r) => {
      if (!r.drain) return { pass: undefined, why: 'no figures' };
      const fails = [r.drain.ratio < 0.5 ? `drain/register ${fmtRatio(r.drain.ratio)} < 0.5` : '', r.drain.verify.inSync ? '' : 'verify reports drift'].filter(Boolean);
      return { pass: fails.length === 0, why: fails.length ? fails.join(', ') : `register ${r.drain.registerPerSec}/s, drain ${r.drain.drainPerSec}/s, ratio ${fmtRatio(r.drain.ratio)}` };
    },
  },
  'resolve-l1': {
    rule: 'req/s >= 0.85 x ceiling, p99 <= 2 x ceiling p99',
    judge: (r) => {
      if (r.ratio === undefined || r.p99Ratio === undefined) return { pass: undefined, why: 'no ceiling' };
      const fails = [r.ratio < 0.85 ? `ratio ${fmtRatio(r.ratio)} < 0.85` : '', r.p99Ratio > 2 ? `p99 ratio ${fmtRatio(r.p99Ratio)} > 2` : ''].filter(Boolean);
      return { pass: fails.length === 0, ...(fails.length ? { why: fails.join(', ') } : {}) };
    },
  },
  'resolve-redis': {
    rule: `req/s >= 0.5 x ceiling, node RSS < ${RSS_LIMIT_MIB} MiB (at --seed ${RSS_MEANT_AT_SEED})`,
    judge: (r, seeded) => {
      const fails = [
        r.ratio !== undefined && r.ratio < 0.5 ? `ratio ${fmtRatio(r.ratio)} < 0.5` : '',
        r.peakRssMiB !== undefined && r.peakRssMiB >= RSS_LIMIT_MIB ? `RSS ${r.peakRssMiB} MiB >= ${RSS_LIMIT_MIB}` : '',
      ].filter(Boolean);
      if (fails.length > 0) return { pass: false, why: fails.join(', ') };
      if (r.ratio === undefined) return { pass: undefined, why: 'no ceiling' };
      const caveats = [r.peakRssMiB === undefined ? 'RSS n/a' : '', seeded < RSS_MEANT_AT_SEED ? `RSS target meant at --seed ${RSS_MEANT_AT_SEED}` : ''].filter(Boolean);
      return { pass: true, ...(caveats.length ? { why: caveats.join('; ') } : {}) };
    },
  },
  'resolve-pg': {
    rule: 'req/s >= 0.25 x ceiling',
    judge: (r) => (r.ratio === undefined ? { pass: undefined, why: 'no ceiling' } : r.ratio >= 0.25 ? { pass: true } : { pass: false, why: `ratio ${fmtRatio(r.ratio)} < 0.25` }),
  },
  'resolve-l1-nocount': {
    rule: `resolve-l1 req/s (counting on) >= ${COUNTING_MIN} x req/s with counting off, over interleaved slices`,
    judge: (r) => {
      if (!r.pair) return { pass: undefined, why: 'not measured' };
      const on = fmtRatio(r.pair.ratio);
      return r.pair.ratio >= COUNTING_MIN ? { pass: true, why: `count on ${on} x off` } : { pass: false, why: `count on ${on} x off < ${COUNTING_MIN}` };
    },
  },
  'resolve-l1-nolimit': {
    rule: 'resolve-l1 req/s with the resolution rate limits on, against off, over interleaved slices (reported, no target)',
    judge: (r) => (r.pair ? { pass: undefined, why: `limit on ${fmtRatio(r.pair.ratio)} x off` } : { pass: undefined, why: 'not measured' }),
  },
  'resolve-l1-nometrics': {
    rule: 'resolve-l1 req/s with the Prometheus metrics on (the default), against METRICS=false, over interleaved slices (reported, no target)',
    judge: (r) => (r.pair ? { pass: undefined, why: `metrics on ${fmtRatio(r.pair.ratio)} x off` } : { pass: undefined, why: 'not measured' }),
  },
  'write-audit': {
    rule: `PUT req/s with the audit log on >= ${AUDIT_MIN} x req/s with it off, over interleaved slices`,
    judge: (r) => {
      if (!r.pair) return { pass: undefined, why: 'not measured' };
      const on = fmtRatio(r.pair.ratio);
      return r.pair.ratio >= AUDIT_MIN ? { pass: true, why: `audit on ${on} x off` } : { pass: false, why: `audit on ${on} x off < ${AUDIT_MIN}` };
    },
  },
  import: {
    rule: `node RSS < ${RSS_LIMIT_MIB} MiB while importing (meant at --import-lines ${IMPORT_MEANT_AT_LINES})`,
    judge: (r, _seeded, lines) => {
      if (r.peakRssMiB === undefined) return { pass: undefined, why: 'RSS n/a' };
      const rate = `${r.identifiersPerSec?.toLocaleString('en')} lines/s`;
      if (r.peakRssMiB >= RSS_LIMIT_MIB) return { pass: false, why: `RSS ${r.peakRssMiB} MiB >= ${RSS_LIMIT_MIB}; ${rate}` };
      return { pass: true, why: lines < IMPORT_MEANT_AT_LINES ? `${rate}; meant at ${IMPORT_MEANT_AT_LINES.toLocaleString('en')} lines` : rate };
    },
  },
  'register-batch': {
    rule: 'identifiers/s (1,000 creates a request) >= 0.5 x rows/s of a bare COPY of the same rows, interleaved',
    judge: (r) => (r.ratio === undefined ? { pass: undefined, why: 'no COPY yardstick' } : r.ratio >= 0.5 ? { pass: true, why: `x${fmtRatio(r.ratio)} of COPY` } : { pass: false, why: `x${fmtRatio(r.ratio)} of COPY < 0.5` }),
  },
  'register-single': {
    rule: 'creates/s >= 0.3 x ceiling req/s',
    judge: (r) => (r.ratio === undefined ? { pass: undefined, why: 'no ceiling' } : r.ratio >= 0.3 ? { pass: true } : { pass: false, why: `ratio ${fmtRatio(r.ratio)} < 0.3` }),
  },
  stats: {
    rule: 'every stats route: mean latency of count(*) of identifiers / mean latency of the route >= 20',
    judge: (r) => {
      const routes = r.stats?.routes ?? [];
      const rated = routes.filter((t) => t.ratio !== undefined);
      if (rated.length === 0) return { pass: undefined, why: 'not measured' };
      const worst = rated.reduce((a, b) => (b.ratio! < a.ratio! ? b : a));
      const slow = rated.filter((t) => !t.pass);
      if (slow.length === 0) return { pass: true, why: `slowest x${fmtRatio(worst.ratio)}` };
      return { pass: false, why: `${slow.length} of ${routes.length} < x${r.stats!.target}, slowest x${fmtRatio(worst.ratio)}` };
    },
  },
  'resolve-batch': {
    rule: 'identifiers/s >= 20 x ceiling req/s',
    judge: (r) => (r.ratio === undefined ? { pass: undefined, why: 'no ceiling' } : r.ratio >= 20 ? { pass: true } : { pass: false, why: `ratio ${fmtRatio(r.ratio)} < 20` }),
  },
};

/**
 * Fills ratio, p99Ratio and target of every result: against the ceiling interleaved with it on its
 * node when there is one, else against the standalone ceiling of the same run.
 */
export function judge(results: ScenarioResult[], seeded: number, importLines = 0): void {
  const standalone = results.find((r) => r.name === 'ceiling' && r.status === 'ok');
  for (const r of results) {
    if (r.status !== 'ok') continue;
    // A pair compares its own two nodes; a ceiling from another node and window would only mislead.
    const ceiling = r.interleavedCeiling ?? (r.pair ? undefined : standalone);
    if (ceiling?.reqPerSec && r.reqPerSec !== undefined) {
      // Batch: identifiers per second against the ceiling's requests per second.
      // A yardstick of many rows per request (register-batch's COPY): identifiers against rows.
      const per = 'identifiersPerRequest' in ceiling ? (ceiling.identifiersPerRequest ?? 1) : 1;
      r.ratio = round2((r.identifiersPerSec ?? r.reqPerSec) / (ceiling.reqPerSec * per));
      if (ceiling.latencyMs && ceiling.latencyMs.p99 > 0 && r.latencyMs) r.p99Ratio = round2(r.latencyMs.p99 / ceiling.latencyMs.p99);
    }
    const rule = TARGETS[r.name];
    if (!rule) continue;
    if ((r.errors ?? 0) > 0) {
      r.target = { rule: rule.rule, pass: false, why: `${r.errors} errors` };
      continue;
    }
    r.target = { rule: rule.rule, ...rule.judge(r, seeded, importLines) };
  }
}

/** The interleaved ceiling's req/s, or a yardstick's rows/s with its name (register-batch: "copy 41,000/s"). */
function yardstick(c: ScenarioResult['interleavedCeiling']): string {
  if (!c) return '';
  const per = c.identifiersPerRequest ?? 1;
  return c.label && c.label !== 'ceiling' ? `${c.label} ${int(c.reqPerSec * per)}${per > 1 ? ' rows' : ''}` : int(c.reqPerSec);
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
const int = (x: number | undefined): string => (x === undefined ? '' : Math.round(x).toLocaleString('en'));
const ms = (x: number | undefined): string => (x === undefined ? '' : x.toFixed(2));

export function table(results: ScenarioResult[], urlMode: boolean): string {
  const header = ['scenario', 'node config', 'req/s', 'ids/s', 'p50 ms', 'p97.5 ms', 'p99 ms', 'errors', 'ceiling req/s (interleaved)', 'x ceiling', 'p99 x ceiling', 'peak RSS MiB', 'cpu % node/bench/other', 'target'];
  const rows = results.map((r) => {
    if (r.status !== 'ok') return [r.name, r.config, '', '', '', '', '', r.status === 'failed' ? 'FAILED' : '', '', '', '', '', '', `${r.status.toUpperCase()} (see below)`];
    const target = r.target ? `${r.target.pass === undefined ? 'n/a' : r.target.pass ? 'PASS' : 'FAIL'}${r.target.why ? ` (${r.target.why})` : ''}` : '-';
    return [
      r.name,
      r.config,
      int(r.reqPerSec),
      r.identifiersPerSec !== undefined && r.identifiersPerSec !== r.reqPerSec ? int(r.identifiersPerSec) : '',
      ms(r.latencyMs?.p50),
      ms(r.latencyMs?.p97_5),
      ms(r.latencyMs?.p99),
      String(r.errors ?? 0),
      yardstick(r.interleavedCeiling),
      r.name === 'ceiling' ? '1.00' : fmtRatio(r.ratio),
      r.name === 'ceiling' ? '1.00' : fmtRatio(r.p99Ratio),
      urlMode ? 'n/a' : r.peakRssMiB === undefined ? 'n/a' : r.peakRssMiB.toFixed(1),
      `${r.nodeCpuPct ?? 'n/a'}/${r.benchCpuPct ?? 'n/a'}/${r.otherCpuPct ?? 'n/a'}`,
      target,
    ];
  });
  const notes = results.filter((r) => r.note).map((r) => `- ${r.name}${r.status === 'ok' ? '' : ` ${r.status}`}: ${r.note}`);
  const extra = results.flatMap((r) => [r.pair ? pairTable(r.name, r.pair) : '', r.stats ? statsTable(r.stats) : '']).filter(Boolean);
  return [markdown(header, rows, new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])), ...(notes.length ? ['', ...notes] : []), ...extra.flatMap((t) => ['', t])].join('\n');
}

/** A Markdown table, numeric columns right-aligned. */
function markdown(header: string[], rows: string[][], numeric: Set<number>): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]) => `| ${cells.map((cell, c) => (numeric.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (numeric.has(c) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** resolve-l1-nocount: each slice's req/s on both nodes, and the sums compared. */
function pairTable(name: string, p: PairDetail): string {
  const [on, off] = name === 'write-audit' ? ['audit on', 'audit off'] : name === 'resolve-l1-nolimit' ? ['limit on', 'limit off'] : name === 'resolve-l1-nometrics' ? ['metrics on', 'metrics off'] : ['count on', 'count off'];
  const header = [name, ...Array.from({ length: p.slices }, (_, k) => `slice ${k + 1}`), 'all slices', 'p99 ms', 'errors', 'cpu % node/bench/other'];
  const side = (s: PairDetail['baseline'], what: string) => [
    `${s.config} (${what}) req/s`,
    ...s.sliceReqPerSec.map(int),
    int(s.reqPerSec),
    ms(s.latencyMs.p99),
    String(s.errors),
    `${s.nodeCpuPct ?? 'n/a'}/${s.benchCpuPct}/${s.otherCpuPct ?? 'n/a'}`,
  ];
  const ratio = [`${on} / ${off}`, ...p.baseline.sliceReqPerSec.map((b, k) => fmtRatio(p.measured.sliceReqPerSec[k] ? b / p.measured.sliceReqPerSec[k]! : undefined)), p.ratio.toFixed(3), '', '', ''];
  const numeric = new Set(Array.from({ length: p.slices + 4 }, (_, k) => k + 1));
  const order = `order: ${p.order.map(([a, b]) => `${a}, ${b}`).join('; ')} (${p.sliceSeconds} s slices)`;
  return `${markdown(header, [side(p.baseline, on), side(p.measured, off), ratio], numeric)}\n${order}`;
}

/** stats: each route's latency against the count(*) yardstick. */
function statsTable(st: StatsDetail): string {
  const header = ['stats route', 'mean ms', 'p50 ms', 'p99 ms', 'req/s', 'errors', 'x count(*)', `target >= ${st.target}`];
  const row = (t: StatsDetail['routes'][number], yard: boolean) => [
    yard ? `${t.name} (${t.path})` : t.path,
    ms(t.meanMs),
    ms(t.latencyMs.p50),
    ms(t.latencyMs.p99),
    int(t.reqPerSec),
    String(t.errors),
    yard ? '' : fmtRatio(t.ratio),
    yard ? '' : t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'FAIL',
  ];
  // In the order they ran: the yardstick before the routes, between groups of them, after.
  const byName = new Map([...st.yardstick.map((t) => [t.name, row(t, true)] as const), ...st.routes.map((t) => [t.name, row(t, false)] as const)]);
  const rows = st.order.map((name) => byName.get(name)!).filter(Boolean);
  rows.push([`count-identifiers, mean of ${st.yardstick.length} runs`, ms(st.yardstickMeanMs), '', '', '', '', '1.00', '']);
  const seed = `seed: ${JSON.stringify(st.seed.body)} in ${st.seed.seconds} s; today ${st.today}; ${st.connections} connections, ${st.durationS} s per route`;
  return `${markdown(header, rows, new Set([1, 2, 3, 4, 5, 6]))}\n${seed}`;
}

export interface RunRecord {
  startedAt: string;
  finishedAt: string;
  machine: Record<string, unknown>;
  options: Record<string, unknown>;
  mode: 'started nodes' | 'url';
  seed?: unknown;
  nodes?: unknown;
  profiles: string[];
  results: ScenarioResult[];
}

export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    memoryMiB: Math.round(os.totalmem() / 1024 / 1024),
    loadAverage: os.loadavg().map(round2),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    hostname: os.hostname(),
  };
}

/** bench/results/ of the checkout (this file runs from dist/bench-runner/). */
export const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

export function writeRecord(record: RunRecord, file: string | undefined): string {
  const target = file ?? path.join(RESULTS_DIR, `${record.startedAt.replace(/:/g, '-')}.json`);
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, `${JSON.stringify(record, null, 2)}\n`);
  return target;
}
