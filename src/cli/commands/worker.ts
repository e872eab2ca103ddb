/** `steerlab worker`: run chunks of queued sweeps on this machine until stopped (Ctrl-C finishes the current one). */
import { resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_QUEUE_NAME } from "../../distrib/queue.js";
import { startSweepWorker } from "../../distrib/worker.js";
import { int, LIMITS, threadsOption } from "../options.js";

interface WorkerCli {
  queue: string;
  queueName?: string;
  concurrency: number;
  name?: string;
  base?: string;
  threads?: number;
  lockDuration?: number;
  json?: boolean;
}

/** Seconds a stopping worker may take to finish its chunk and close before it exits anyway. */
const CLOSE_GRACE_S = 120;

export function registerWorker(program: Command): void {
  program
    .command("worker")
    .description(
      "run chunks of sweeps queued with `steerlab sweep --queue` (any sweep whose files this machine holds)",
    )
    .requiredOption("--queue <redis-url>", "the queue's Redis, e.g. redis://host:6379")
    .option("--queue-name <name>", `queue name (default ${DEFAULT_QUEUE_NAME})`)
    .option(
      "--concurrency <n>",
      "chunks at once, each on its own engine",
      int("concurrency", 1, LIMITS.concurrency),
      1,
    )
    .option("--name <name>", "this worker's name in `steerlab status` (default <host>#<pid>)")
    .option(
      "--base <dir>",
      "folder the sweep config's relative paths resolve against (default: the coordinator's)",
    )
    .option("--threads <n>", "compute threads per engine (default: all cores)", threadsOption)
    .option(
      "--lock-duration <ms>",
      "a dead worker's chunk is redone after this long; must exceed one forward (default 60000)",
      int("lock-duration", 1000),
    )
    .option("--json", "one JSON line per event on stdout")
    .addHelpText(
      "after",
      `
Examples:
  steerlab worker --queue redis://10.0.0.5:6379
  steerlab worker --queue redis://10.0.0.5:6379 --base /data/exp --threads 8
The worker checks that its model, vector and data files match the plan's fingerprints and refuses the sweep
otherwise (the chunk goes back to the queue for another worker).`,
    )
    .action(async (o: WorkerCli) => {
      const w = await startSweepWorker({
        url: o.queue,
        ...(o.queueName ? { queueName: o.queueName } : {}),
        concurrency: o.concurrency,
        ...(o.name ? { name: o.name } : {}),
        ...(o.base ? { base: resolve(o.base) } : {}),
        ...(o.threads ? { threads: o.threads } : {}),
        ...(o.lockDuration ? { lockDurationMs: o.lockDuration } : {}),
        onEvent: (e) => {
          if (o.json) process.stdout.write(`${JSON.stringify(e)}\n`);
          else if (e.type === "start") process.stderr.write(`${e.chunk}: started\n`);
          else if (e.type === "done")
            process.stderr.write(
              `${e.chunk}: ${e.records} records in ${(e.computeMs / 1000).toFixed(2)} s\n`,
            );
          else process.stderr.write(`${e.chunk}: failed: ${e.error}\n`);
        },
      });
      process.stderr.write(`steerlab worker ${w.name}: waiting for chunks on ${o.queue}\n`);
      // First signal: finish the current chunk and close. A second signal, or no close within the grace period
      // (BullMQ's close waits for Redis, which may be gone), stops at once; an unfinished chunk is redone elsewhere.
      let stopping = false;
      const stop = () => {
        if (stopping) {
          process.stderr.write(`steerlab worker ${w.name}: stopping now\n`);
          process.exit(130);
        }
        stopping = true;
        process.stderr.write(
          `steerlab worker ${w.name}: finishing the current chunk, then stopping (signal again to stop now)\n`,
        );
        setTimeout(() => {
          process.stderr.write(
            `steerlab worker ${w.name}: did not close within ${CLOSE_GRACE_S} s, stopping now\n`,
          );
          process.exit(1);
        }, CLOSE_GRACE_S * 1000).unref();
        void w.close();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      try {
        await w.closed;
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
    });
}
