/** `steerlab status`: progress of queued sweeps per run, per worker and per chunk in flight. */
import type { Command } from "commander";
import { DEFAULT_QUEUE_NAME } from "../../distrib/queue.js";
import { queueStatus, removeRun } from "../../distrib/status.js";

interface StatusCli {
  queue: string;
  queueName?: string;
  run?: string;
  remove?: string;
  json?: boolean;
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description(
      "show queued sweeps: chunks per run, workers, chunks in flight with their progress, failures",
    )
    .requiredOption("--queue <redis-url>", "the queue's Redis, e.g. redis://host:6379")
    .option("--queue-name <name>", `queue name (default ${DEFAULT_QUEUE_NAME})`)
    .option("--run <id>", "only this run (the id `steerlab sweep --queue` prints)")
    .option("--remove <run>", "remove a collected run's jobs (and the records they hold) from Redis")
    .option("--json", "print the status as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  steerlab status --queue redis://10.0.0.5:6379\n  steerlab status --queue redis://10.0.0.5:6379 --remove 2d043fd9cc0929ff",
    )
    .action(async (o: StatusCli) => {
      if (o.remove) {
        const r = await removeRun({
          url: o.queue,
          run: o.remove,
          ...(o.queueName ? { queueName: o.queueName } : {}),
        });
        process.stdout.write(
          o.json
            ? `${JSON.stringify(r)}\n`
            : `removed ${r.removed} job(s) of run ${o.remove}${r.active ? `; ${r.active} still running (remove again later)` : ""}\n`,
        );
        return;
      }
      const s = await queueStatus({
        url: o.queue,
        ...(o.queueName ? { queueName: o.queueName } : {}),
        ...(o.run ? { run: o.run } : {}),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      const out: string[] = [`queue ${s.queue}`];
      for (const r of s.runs) {
        out.push(
          `run ${r.run}: ${r.completed} done, ${r.active} running, ${r.waiting} waiting, ${r.retrying} to retry, ${r.failed} failed`,
        );
        for (const f of r.refused) out.push(`  refused by ${f.worker}: ${f.message.split("\n")[0]}`);
      }
      if (s.runs.length === 0) out.push("no sweeps in this queue");
      out.push("workers:");
      for (const w of s.workers)
        out.push(
          `  ${w.worker}${w.connected ? "" : " (gone)"}: ${w.active} running, ${w.completed} done (${(w.computeMs / 1000).toFixed(1)} s), ${w.failed} failed`,
        );
      if (s.workers.length === 0) out.push("  none connected");
      for (const a of s.active)
        out.push(
          `running ${a.chunk} on ${a.worker}: ${a.done}/${a.total} cells, for ${((Date.now() - a.startedAt) / 1000).toFixed(0)} s${a.attempt > 1 ? ` (attempt ${a.attempt})` : ""}`,
        );
      for (const f of s.failed) out.push(`failed ${f.chunk} after ${f.attempts} attempt(s): ${f.error}`);
      process.stdout.write(`${out.join("\n")}\n`);
    });
}
