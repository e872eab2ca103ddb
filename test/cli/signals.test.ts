/**
 * SIGTERM stops a command as cleanly as Ctrl-C: a sweep stores what it scored, releases its run-folder lock
 * and exits 143, and rerunning it resumes without a stale lock to take over; a command without an abort path
 * (demo, experiment) releases its locks on the signal before it exits.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LOCK_FILE } from "../../src/eval/run-lock.js";
import { RESULTS_FILE } from "../../src/eval/store.js";
import { CLI, COMPILED, ROOT } from "../helpers/cli.js";
import { writeDemoSweep } from "../helpers/demo-sweep.js";

const root = mkdtempSync(join(tmpdir(), "steerlab-signals-"));
after(() => rmSync(root, { recursive: true, force: true }));

interface Run {
  code: Promise<number | null>;
  stderr: () => string;
  kill: (s: NodeJS.Signals) => void;
}

function start(args: string[]): Run {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  child.stdout!.resume();
  return {
    code: new Promise((r) => child.once("exit", (c) => r(c))),
    stderr: () => err,
    kill: (s) => child.kill(s),
  };
}

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const lineCount = (dir: string) =>
  existsSync(join(dir, RESULTS_FILE))
    ? readFileSync(join(dir, RESULTS_FILE), "utf8").split("\n").length - 1
    : 0;

test("SIGTERM mid-sweep: exit 143, lock released, what was scored kept; the rerun resumes without a takeover", async () => {
  const cfg = writeDemoSweep(join(root, "exp"), { coeffs: "-30:30:5" });
  const out = join(root, "run");
  const args = [...CLI, "sweep", "--config", cfg, "-o", out, "--threads", "1"];
  const r = start(args);
  await until(() => lineCount(out) > 0, "the first stored records");
  assert.ok(existsSync(join(out, LOCK_FILE)), "the sweep holds its lock while it runs");
  r.kill("SIGTERM");
  assert.equal(await r.code, 143, r.stderr());
  assert.match(
    r.stderr(),
    /sweep stopped by SIGTERM; everything scored is in .*run \(lock released\); rerun/,
  );
  assert.equal(existsSync(join(out, LOCK_FILE)), false, "the lock file is gone");
  const kept = lineCount(out);
  assert.ok(kept > 0);
  const again = start(args);
  assert.equal(await again.code, 0, again.stderr());
  assert.doesNotMatch(again.stderr(), /took over the lock/);
  assert.ok(lineCount(out) > kept);
});

test("a command without an abort path releases the locks it holds on SIGTERM and exits 143", async () => {
  const ext = COMPILED ? "js" : "ts";
  const pre = COMPILED ? [] : ["--import", import.meta.resolve("tsx")];
  const dir = join(root, "held");
  const r = start([
    ...pre,
    "--input-type=module",
    "-e",
    `const { lockRunDir } = await import(${JSON.stringify(`file://${join(ROOT, `src/eval/run-lock.${ext}`)}`)});
     const { onStopSignals } = await import(${JSON.stringify(`file://${join(ROOT, `src/cli/signals.${ext}`)}`)});
     lockRunDir(process.argv[1]); onStopSignals(); process.stderr.write("ready\\n"); setInterval(() => {}, 1000);`,
    dir,
  ]);
  await until(() => r.stderr().includes("ready"), "the child to take the lock");
  assert.ok(existsSync(join(dir, LOCK_FILE)));
  r.kill("SIGTERM");
  assert.equal(await r.code, 143);
  assert.match(
    r.stderr(),
    /stopped by SIGTERM; released the lock of .*held; rerun the same command to resume/,
  );
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
});
