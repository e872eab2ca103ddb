/**
 * A config refused when the sweep is planned (layer sets against the model's depth, prompts against its context)
 * leaves no trace in the run folder, so the corrected config runs there; a stale lock taken over is reported as
 * soon as the folder is opened, even when the sweep is then interrupted.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { queueSweep } from "../../src/distrib/coordinator.js";
import { isSteerlabError } from "../../src/errors.js";
import { runExperiment } from "../../src/eval/experiment.js";
import { LOCK_FILE } from "../../src/eval/run-lock.js";
import type { StoreRecovery } from "../../src/eval/store.js";
import { parseSweepConfig } from "../../src/eval/sweep-config.js";
import { sweepToDir } from "../../src/eval/sweep-plan.js";
import { ROOT, steerlab, steerlabFails } from "../helpers/cli.js";
import { REDIS_MISSING, startRedis } from "../helpers/redis.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const demo = [join(ROOT, "demo"), join(ROOT, "..", "demo")].find((d) => existsSync(join(d, "models")))!;
const root = mkdtempSync(join(tmpdir(), "steerlab-refusal-"));
after(() => rmSync(root, { recursive: true, force: true }));
let model: string;
const MMLU = `question,A,B,C,D,answer
What is 2+2?,3,4,5,6,B
Capital of France?,Paris,Rome,Oslo,Bern,A
Colour of grass?,red,blue,green,pink,C
Largest planet?,Mars,Venus,Earth,Jupiter,D
`;
// The tiny model's context is 256 tokens of a byte-level tokenizer: one 300-letter question cannot fit.
const LONG = `question,A,B,C,D,answer\n${"x".repeat(300)},a,b,c,d,A\n`;

const raw = (
  layers: string[],
  task: Record<string, unknown> = { id: "mcq", kind: "mcq", data: "mmlu.csv" },
) => ({
  model,
  backend: "reference",
  vectors: ["random:3"],
  layers,
  coeffs: [0, 1],
  tasks: [task],
});

before(() => {
  model = writeTinyModels(root, "llama", { seed: 5 }).hfDir; // 3 blocks
  writeFileSync(join(root, "mmlu.csv"), MMLU);
  writeFileSync(join(root, "long.csv"), LONG);
});

describe("a config refused at planning leaves no trace", () => {
  const refusals: [string, string[], Record<string, unknown> | undefined, string, RegExp][] = [
    ["backwards range", ["0", "2..0"], undefined, "layers[1]", /runs backwards/],
    ["layer out of range", ["1..9"], undefined, "layers[0]", /layer 9 out of range/],
    [
      "prompts over the context",
      ["0"],
      { id: "long", kind: "mcq", data: "long.csv" },
      "tasks[0]",
      /do not fit the model's context/,
    ],
  ];
  for (const [name, layers, task, field, message] of refusals) {
    test(`${name}: bad_config naming ${field}; a new folder is not created, an existing one is untouched`, async () => {
      const cfg = parseSweepConfig(raw(layers, task), root, join(root, "bad.yaml"));
      const fresh = join(root, `fresh-${field}`);
      await assert.rejects(
        sweepToDir(cfg, fresh),
        (e) =>
          isSteerlabError(e, "bad_config") &&
          e.details.field === field &&
          e.details.file === join(root, "bad.yaml") &&
          message.test(e.message),
      );
      assert.ok(!existsSync(fresh), "no folder for a refused config");
      // an existing (empty) folder keeps nothing: no run.json, no results, no lock
      const existing = join(root, `existing-${field}`);
      mkdirSync(existing);
      await assert.rejects(sweepToDir(cfg, existing), (e) => isSteerlabError(e, "bad_config"));
      assert.deepEqual(readdirSync(existing), []);
      // the corrected config runs in the same folders
      const good = parseSweepConfig(raw(["0..2"]), root);
      for (const dir of [fresh, existing]) assert.equal((await sweepToDir(good, dir)).stats.computed, 8);
    });
  }

  test("few-shot prompts over the context: the field path names the task's shots", async () => {
    const rows = Array.from(
      { length: 8 },
      (_, i) => `${"Which letter is it number ".repeat(2)}${i}?,a,b,c,d,A`,
    );
    writeFileSync(join(root, "shots.csv"), `question,A,B,C,D,answer\n${rows.join("\n")}\n`);
    const cfg = parseSweepConfig(
      raw(["0"], { id: "s", kind: "mcq", data: "shots.csv", shots: 5 }),
      root,
      join(root, "shots.yaml"),
    );
    await assert.rejects(
      sweepToDir(cfg, join(root, "shots-run")),
      (e) => isSteerlabError(e, "bad_config") && e.details.field === "tasks[0].shots",
    );
    assert.ok(!existsSync(join(root, "shots-run")));
  });

  test("CLI: the refused config file is named with its field; the fixed config then runs in the same folder", async () => {
    const yaml = (layers: string) =>
      `model: ${model}\nbackend: reference\nvectors: ["random:3"]\nlayers: ["${layers}"]\ncoeffs: [0]\ntasks: [{ id: mcq, kind: mcq, data: mmlu.csv }]\n`;
    writeFileSync(join(root, "bad.yaml"), yaml("2..0"));
    writeFileSync(join(root, "good.yaml"), yaml("0..2"));
    const out = join(root, "cli-run");
    const bad = await steerlabFails(root, "sweep", "--config", "bad.yaml", "-o", out);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error \[bad_config\]: layer range "2\.\.0" runs backwards/);
    assert.match(bad.stderr, /file: bad\.yaml; field: layers\[0\]/);
    assert.ok(!existsSync(out));
    const ok = JSON.parse(await steerlab(root, "sweep", "--config", "good.yaml", "-o", out, "--json"));
    assert.equal(ok.stats.computed, 4);
  });

  test("queue coordinator: a refused config creates no run folder", {
    skip: REDIS_MISSING ?? false,
  }, async () => {
    const redis = await startRedis();
    try {
      const dir = join(root, "queued");
      const cfg = parseSweepConfig(raw(["2..0"]), root, join(root, "bad.yaml"));
      await assert.rejects(
        queueSweep(cfg, dir, { url: redis.url, noWait: true }),
        (e) => isSteerlabError(e, "bad_config") && e.details.field === "layers[0]",
      );
      assert.ok(!existsSync(dir));
    } finally {
      await redis.stop();
    }
  });

  test("experiment: tasks that do not fit a model are refused before the vector is extracted or anything written", async () => {
    const out = join(root, "experiment");
    await assert.rejects(
      runExperiment(
        {
          title: "t",
          models: [{ name: "tiny", path: model }],
          pairs: join(demo, "tasks/request-pairs.jsonl"),
          layers: "1",
          coeffs: [0],
          backend: "reference",
          tasks: [{ id: "long", kind: "mcq", data: join(root, "long.csv") }],
          alignmentTask: "long",
          helpfulnessTask: "long",
        },
        out,
      ),
      (e) => isSteerlabError(e, "bad_config") && e.details.field === "tasks[0]",
    );
    assert.ok(!existsSync(out), "no output folder, no vector file");
  });
});

test("a stale lock taken over is reported when the folder is opened, before the sweep is interrupted", async () => {
  const dir = join(root, "stale");
  mkdirSync(dir);
  const dead = spawn(process.execPath, ["-e", ""]);
  await new Promise((res) => dead.on("exit", res));
  const holder = { pid: dead.pid, host: hostname(), started: "2026-01-01T00:00:00.000Z", command: "x" };
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify(holder));
  const seen: { recovery: StoreRecovery; progressed: boolean }[] = [];
  let progressed = false;
  const ac = new AbortController();
  await assert.rejects(
    sweepToDir(parseSweepConfig(raw(["0"]), root), dir, {
      signal: ac.signal,
      onRecovery: (recovery) => seen.push({ recovery, progressed }),
      onProgress: (done) => {
        progressed = true;
        if (done > 0) ac.abort();
      },
      batchSize: 1,
    }),
    (e) => (e as Error).name === "AbortError",
  );
  assert.equal(seen.length, 1);
  assert.deepEqual(seen[0]!.recovery.staleLock, holder);
  assert.equal(seen[0]!.progressed, false, "reported before any cell was scored");
  assert.ok(!existsSync(join(dir, LOCK_FILE)), "released after the interruption");
  assert.ok(readFileSync(join(dir, "run.json"), "utf8").length > 0);
});
