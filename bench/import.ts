/**
 * The import scenario: streams an NDJSON file of `lines` new identifiers into POST /api/imports
 * (generated as it is sent, never held whole by the bench), polls GET /api/imports/{id} until the
 * job is done, and samples the node's resident memory from the first byte sent to the end. The
 * figure judged is that memory (issue 7: under 300 MiB for 1,000,000 lines); lines/s is reported.
 */
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { ActiveNode } from './nodes.js';
import { MemorySampler, startCpuMeter } from './proc-stats.js';
import { progress } from './progress.js';
import type { ScenarioResult } from './report.js';
import type { ImportScenario, SetInfo } from './scenarios.js';

export interface ImportDetail {
  lines: number;
  /** Bytes of NDJSON sent. */
  bytes: number;
  uploadSeconds: number;
  /** From the first byte sent until the job reported done. */
  seconds: number;
  written: number;
  rejected: number;
  state: string;
  jobId: string;
}

interface Job {
  id: string;
  state: string;
  linesRead: number;
  written: number;
  rejected: number;
  error: string | null;
}

const fmt = (n: number): string => n.toLocaleString('en');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `lines` NDJSON lines, generated in chunks of 1,000 as the upload asks for them. */
function ndjson(run: string, lines: number, counter: { bytes: number }): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let from = 0; from < lines; from += 1000) {
      const to = Math.min(lines, from + 1000);
      let text = '';
      for (let n = from; n < to; n++) {
        text += `{"suffix":"IMP-${run}-${n}","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://bench.example/part/${n}"}},{"index":2,"type":"EMAIL","data":{"format":"string","value":"qa@bench.example"}}]}\n`;
      }
      const chunk = Buffer.from(text);
      counter.bytes += chunk.length;
      yield chunk;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

export async function measureImport(scenario: ImportScenario, node: ActiveNode, set: SetInfo, lines: number, signal: AbortSignal): Promise<ScenarioResult> {
  const base: ScenarioResult = { name: scenario.name, config: node.label, status: 'ok' };
  const run = Date.now().toString(36);
  const counter = { bytes: 0 };
  const sampler = node.pid !== undefined ? new MemorySampler(node.pid).start() : undefined;
  const cpu = startCpuMeter(node.pid);
  const started = Date.now();
  try {
    // undici's request streams a Node Readable with back-pressure (Readable.toWeb on Node 20 reads
    // ahead without limit: the whole file would sit in the bench's memory).
    const response = await request(`${node.url}/api/imports?prefix=${encodeURIComponent(set.prefix)}&mode=create`, {
      method: 'POST',
      headers: { authorization: `Bearer ${set.key ?? ''}`, 'content-type': 'application/x-ndjson' },
      body: ndjson(run, lines, counter),
      signal,
    });
    const accepted = (await response.body.json()) as Job;
    const uploadSeconds = (Date.now() - started) / 1000;
    if (response.statusCode !== 202) return { ...base, status: 'failed', note: `POST /api/imports answered ${response.statusCode}: ${JSON.stringify(accepted).slice(0, 300)}` };
    let job = accepted;
    while (job.state !== 'done' && job.state !== 'failed') {
      if (signal.aborted) throw new Error('aborted');
      await sleep(250);
      const polled = await fetch(`${node.url}/api/imports/${job.id}`, { headers: { authorization: `Bearer ${set.key ?? ''}` }, signal });
      job = (await polled.json()) as Job;
      const s = (Date.now() - started) / 1000;
      progress(`[${scenario.name}] job ${job.id} ${job.state}: ${fmt(job.linesRead)}/${fmt(lines)} lines, ${fmt(job.written)} written, ${fmt(job.rejected)} rejected, ${s.toFixed(0)} s, ${fmt(Math.round(job.linesRead / s))} lines/s`);
    }
    progress.done();
    const seconds = (Date.now() - started) / 1000;
    const memory = sampler?.stop();
    const detail: ImportDetail = { lines, bytes: counter.bytes, uploadSeconds, seconds, written: job.written, rejected: job.rejected, state: job.state, jobId: job.id };
    const wrong = job.state !== 'done' ? 1 : job.rejected + Math.max(0, lines - job.written - job.rejected);
    const perSec = Math.round(job.written / seconds);
    return {
      ...base,
      note: `${fmt(lines)} lines (${(counter.bytes / 1024 / 1024).toFixed(0)} MiB of NDJSON): uploaded in ${uploadSeconds.toFixed(1)} s, done in ${seconds.toFixed(1)} s${job.error ? `; job error: ${job.error}` : ''}`,
      // Lines per second as identifiers/s only: there is no ceiling to take a ratio against.
      identifiersPerSec: perSec,
      requests: job.linesRead,
      durationS: seconds,
      errors: wrong,
      ...(memory?.peakRssMiB !== undefined ? { peakRssMiB: memory.peakRssMiB } : {}),
      ...cpu(),
      import: detail,
    };
  } finally {
    sampler?.stop();
  }
}
