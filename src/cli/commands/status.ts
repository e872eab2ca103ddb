/** `steerlab status`: progress of queued sweeps per run, per worker and per chunk in flight. */
import type { Command } from "commander";
import { DEFAULT_QUEUE_NAME } from "../../distrib/queue.js";
import { queueStatus } from "../../distrib/status.js";

interface StatusCli {
  queue: string;
  queueName?: string;
  run?: string;
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
    .option("--json", "print the status as JSON")
    .addHelpText("after", "\nExample:\n  steerlab status --queue redis://10.0.0.5:6379")
    .action(async (o: StatusCli) => {
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
      for (const r of s.runs)
        out.push(
          `run ${r.run}: ${r.completed} done, ${r.active} running, ${r.waiting} waiting, ${r.retrying} to retry, ${r.failed} failed`,
        );
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
