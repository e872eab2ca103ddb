/** `steerlab sweep --queue`: enqueue the chunks, collect what workers return, write the report at the end. */
import { resolve } from "node:path";
import { queueSweep } from "../../distrib/coordinator.js";
import { SteerlabError } from "../../errors.js";
import type { SweepConfig } from "../../eval/sweep-config.js";
import { readRunReport } from "../../eval/sweep-plan.js";
import { buildReport } from "../../report/build.js";
import { writeReport } from "../../report/writers.js";
import { progressReporter } from "../progress.js";
import { onStopSignals, signalExitCode } from "../signals.js";
import { warnRecovery } from "../store-notes.js";

/** The sweep flags of queue mode. */
export interface QueueCli {
  out: string;
  json?: boolean;
  queue?: string;
  queueName?: string;
  attempts?: number;
  /** false with --no-wait. */
  wait?: boolean;
  report?: string;
}

export async function queuedSweep(config: SweepConfig, o: QueueCli): Promise<void> {
  const dir = resolve(o.out);
  const ac = new AbortController();
  let stoppedBy: NodeJS.Signals = "SIGINT";
  const offSignals = onStopSignals((signal) => {
    stoppedBy = signal;
    ac.abort();
  });
  const bar = progressReporter();
  let noWorkersSince = 0;
  try {
    const res = await queueSweep(config, dir, {
      url: o.queue!,
      ...(o.queueName ? { queueName: o.queueName } : {}),
      ...(o.attempts ? { attempts: o.attempts } : {}),
      noWait: o.wait === false,
      signal: ac.signal,
      onRecovery: warnRecovery,
      onRefusal: (r, others) =>
        process.stderr.write(
          `\nsteerlab: worker ${r.worker} refused the sweep: ${r.message}\nsteerlab: waiting for the ${others} other connected worker(s)\n`,
        ),
      onProgress: (p) => {
        bar({
          label: `sweep (${p.workers} workers, ${p.pending} chunks to go)`,
          done: p.done,
          total: p.total,
        });
        if (p.workers > 0) noWorkersSince = 0;
        else if (!noWorkersSince) noWorkersSince = Date.now();
        else if (Date.now() - noWorkersSince > 30_000) {
          process.stderr.write(
            `\nsteerlab: no worker is connected to the queue; start one with: steerlab worker --queue ${o.queue}\n`,
          );
          noWorkersSince = Date.now();
        }
      },
    });
    bar.end();
    const head = `run ${res.run}: ${res.chunks} chunks; ${res.enqueued} enqueued now, ${res.alreadyQueued} already queued, ${res.retried} failed ones retried; ${res.ingested} records collected into ${dir}`;
    let reportDir: string | null = null;
    if (res.complete && o.wait !== false) {
      reportDir = resolve(o.report ?? resolve(dir, "report"));
      await writeReport(buildReport(readRunReport(dir).data), reportDir);
    }
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ ...res, report: reportDir }, null, 2)}\n`);
    } else {
      process.stdout.write(`${head}\n`);
      for (const f of res.failed)
        process.stdout.write(`failed: ${f.chunk} after ${f.attempts} attempt(s): ${f.error}\n`);
      if (reportDir) process.stdout.write(`every chunk landed; report in ${reportDir}\n`);
      else if (o.wait === false)
        process.stdout.write("enqueued; rerun the same command to collect the results\n");
    }
    if (res.failed.length)
      throw new SteerlabError("bad_input", `${res.failed.length} chunk(s) failed after their attempts`, {
        hint: "fix the cause (see the errors above) and rerun the same command: failed chunks are retried",
      });
  } catch (e) {
    bar.end();
    if ((e as Error).name === "AbortError") {
      process.stderr.write(
        `steerlab: stopped collecting; workers go on, and everything collected is in ${dir}; rerun the same command to collect the rest\n`,
      );
      process.exitCode = signalExitCode(stoppedBy);
      return;
    }
    throw e;
  } finally {
    offSignals();
  }
}
