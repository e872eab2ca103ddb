/**
 * Sweeps split without any infrastructure: work units, `steerlab sweep --shard k/N` on the demo model and
 * `steerlab merge`. The merged store must equal the single-process store exactly (same keys, same numbers to the
 * bit), merging again adds nothing, and stores of another model, vector file or grid are refused.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { RESULTS_FILE, ResultStore, type SweepRecord } from "../../src/eval/store.js";
import { mergeRuns } from "../../src/eval/store-merge.js";
import { chunkKey, parseShard, planChunks, shardChunks } from "../../src/eval/sweep-chunks.js";
import { loadSweepConfig } from "../../src/eval/sweep-config.js";
import { sweepToDir } from "../../src/eval/sweep-plan.js";
import { CLI, steerlab, steerlabFails } from "../helpers/cli.js";
import { writeDemoSweep } from "../helpers/demo-sweep.js";

/** Run the CLI and keep its stderr (warnings) as well as its stdout. */
async function runCli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [...CLI, ...args], { cwd: dir, maxBuffer: 64 << 20 });
}

let dir: string;
let exp: string;
let single: SweepRecord[];

/** Records as sorted JSON lines: equal arrays mean the same cells with bit-identical numbers. */
function canon(recs: readonly SweepRecord[]): string[] {
  return recs.map((r) => JSON.stringify(r)).sort();
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "steerlab-shard-"));
  exp = writeDemoSweep(join(dir, "exp"));
  await sweepToDir(loadSweepConfig(exp), join(dir, "single"), { threads: 1 });
  single = ResultStore.readRecords(join(dir, "single"));
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("work units", () => {
  const items = (n: number) => Array.from({ length: n }, (_, i) => ({ index: i, prompt: `q${i}` }));
  const plan = {
    tasks: [
      { spec: { id: "a", kind: "mcq" as const, data: "x" }, items: items(10) },
      { spec: { id: "b", kind: "mcq" as const, data: "y" }, items: items(3) },
    ],
    variants: [{ id: "v@1..2" }, { id: "w@3" }],
  };

  test("chunks go by task, variant and item run, every r_e inside; keys name the items", () => {
    const cs = planChunks(plan, 4);
    assert.deepEqual(
      cs.map((c) => c.key),
      [
        "a/v@1..2/0-3",
        "a/v@1..2/4-7",
        "a/v@1..2/8-9",
        "a/w@3/0-3",
        "a/w@3/4-7",
        "a/w@3/8-9",
        "b/v@1..2/0-2",
        "b/w@3/0-2",
      ],
    );
    assert.deepEqual(cs[2]!.items, [8, 9]);
    assert.equal(chunkKey("a", "v", [4, 5, 6, 7]), "a/v/4-7");
    // The same plan gives the same keys (stable across runs and machines).
    assert.deepEqual(planChunks(plan, 4), cs);
  });

  test("N shards cover every chunk exactly once, round robin", () => {
    const cs = planChunks(plan, 4);
    for (const n of [1, 2, 3, 5, 8, 11]) {
      const seen = Array.from({ length: n }, (_, k) => shardChunks(cs, { k: k + 1, n })).flat();
      assert.deepEqual(seen.map((c) => c.key).sort(), cs.map((c) => c.key).sort(), `N=${n}`);
    }
    assert.deepEqual(
      shardChunks(cs, { k: 2, n: 3 }).map((c) => c.key),
      ["a/v@1..2/4-7", "a/w@3/4-7", "b/w@3/0-2"],
    );
  });

  test("--shard syntax errors are clear", () => {
    assert.deepEqual(parseShard("2/4"), { k: 2, n: 4 });
    for (const bad of ["0/4", "5/4", "1/0", "a/b", "2", "-1/3"])
      assert.throws(() => parseShard(bad), /bad --shard.*k\/N with 1 <= k <= N/, bad);
  });
});

describe("sweep --shard and merge", () => {
  test("three shards merge into exactly the single-process store", async () => {
    assert.equal(single.length, 5 * (12 + 8 + 14)); // 5 r_e x (12 log-prob + 8 generation + 14 MCQ items)
    const shards = [1, 2, 3].map((k) => join(dir, `s${k}`));
    for (const [i, s] of shards.entries())
      await steerlab(dir, "sweep", "-c", exp, "--shard", `${i + 1}/3`, "--threads", "1", "-o", s);
    const parts = shards.map((s) => ResultStore.readRecords(s));
    // Disjoint shares, each a round-robin third of the 9 chunks.
    assert.deepEqual(
      parts.map((p) => p.length),
      [parts[0]!.length, parts[1]!.length, single.length - parts[0]!.length - parts[1]!.length],
    );
    assert.ok(parts.every((p) => p.length > 0));
    const out = JSON.parse(await steerlab(dir, "merge", ...shards, "-o", join(dir, "merged"), "--json"));
    assert.equal(out.records, single.length);
    assert.deepEqual(
      out.inputs.map((i: { added: number; duplicates: number }) => [i.added, i.duplicates]),
      parts.map((p) => [p.length, 0]),
    );
    assert.deepEqual(canon(ResultStore.readRecords(join(dir, "merged"))), canon(single));
    assert.deepEqual(out.missing, { cells: 0, total: single.length, chunks: [], shards: [] });
    // The merged folder reports like any run folder.
    await steerlab(dir, "report", join(dir, "merged"), "-o", join(dir, "merged-report"));
    assert.ok(existsSync(join(dir, "merged-report", "report.html")));
  });

  test("merging again adds nothing: duplicates are counted by record key, one line per key", async () => {
    const out = mergeRuns([join(dir, "s1"), join(dir, "single")], join(dir, "merged"));
    assert.equal(out.records, single.length);
    for (const i of out.inputs) {
      assert.equal(i.added, 0);
      assert.equal(i.duplicates, i.records);
      assert.equal(i.differing, 0); // the shard computed bit-identical records
    }
    const lines = readFileSync(join(dir, "merged", RESULTS_FILE), "utf8")
      .trim()
      .split("\n");
    assert.equal(lines.length, single.length);
  });

  test("stores of another model, vector file or r_e grid are refused, and nothing is written", async () => {
    const variants = {
      model: writeDemoSweep(join(dir, "other-model"), { model: "chat" }),
      vector: writeDemoSweep(join(dir, "other-vector"), { vectorSeed: 2 }),
      grid: writeDemoSweep(join(dir, "other-grid"), { coeffs: "-30:30:30" }),
    };
    // One chunk of each is enough: merge compares run identities before it reads a record.
    for (const [k, cfg] of Object.entries(variants))
      await steerlab(
        dir,
        "sweep",
        "-c",
        cfg,
        "--shard",
        "1/8",
        "--threads",
        "1",
        "-o",
        join(dir, `run-${k}`),
      );
    const target = join(dir, "refused");
    const r = await steerlabFails(
      dir,
      "merge",
      join(dir, "s1"),
      join(dir, "run-model"),
      join(dir, "run-vector"),
      join(dir, "run-grid"),
      "-o",
      target,
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error \[mismatch\]: these run folders hold another sweep/);
    assert.match(r.stderr, /run-model: another model weights \(fingerprint\)\n/);
    assert.match(r.stderr, /run-vector: another vectors or their files\n/);
    assert.match(r.stderr, /run-grid: another r_e grid/);
    assert.doesNotMatch(r.stderr, /\/s1: another/);
    assert.equal(existsSync(target), false);
    // Into an existing folder: refused against that folder's identity, which keeps its records.
    const into = await steerlabFails(dir, "merge", join(dir, "run-model"), "-o", join(dir, "merged"));
    assert.match(into.stderr, /run-model: another model weights/);
    assert.equal(ResultStore.readRecords(join(dir, "merged")).length, single.length);
  });

  test("shards cut with another N are refused; a merge lacking a shard names the missing cells, and the report warns", async () => {
    // 1/2 beside 1/3 and 2/3: chunks 0, 2, 4, ... and 0, 3, 6, ... overlap and leave holes whatever is merged.
    await sweepToDir(loadSweepConfig(exp), join(dir, "half1"), { threads: 1, shard: parseShard("1/2") });
    const target = join(dir, "mixed");
    assert.throws(
      () => mergeRuns([join(dir, "s1"), join(dir, "s2"), join(dir, "half1")], target),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "mismatch");
        assert.match(
          e.message,
          /^these run folders were cut into shards differently: they cannot tile the grid; file: .*s1\/grid.json/,
        );
        assert.match(
          e.message,
          /\n {2}- .*\/s1: shard 1\/3 at batch size 4\n {2}- .*\/s2: shard 2\/3 at batch size 4\n {2}- .*\/half1: shard 1\/2 at batch size 4/,
        );
        assert.match(
          e.message,
          /expected: every shard of one --shard k\/N run, with the same N and --batch-size/,
        );
        return true;
      },
    );
    assert.equal(existsSync(target), false, "nothing written");
    // Two of three shards: merged, with a loud warning naming what is missing.
    const partial = join(dir, "partial");
    const lacking =
      single.length -
      ResultStore.readRecords(join(dir, "s1")).length -
      ResultStore.readRecords(join(dir, "s2")).length;
    const res = mergeRuns([join(dir, "s1"), join(dir, "s2")], partial);
    assert.equal(res.missing?.cells, lacking);
    assert.equal(res.missing?.total, single.length);
    assert.deepEqual(res.missing?.shards, ["3/3"]);
    assert.deepEqual(res.missing?.chunks, ["lp/rnd@1..3/8-11", "mcq/rnd@1..3/0-3", "mcq/rnd@1..3/12-13"]);
    const { stderr } = await runCli(["merge", join(dir, "s1"), join(dir, "s2"), "-o", join(dir, "partial2")]);
    assert.match(
      stderr,
      new RegExp(
        `steerlab: warning: the merged run is incomplete: ${lacking} of the grid's ${single.length} cells have no result, in 3 chunk\\(s\\): lp/rnd@1\\.\\.3/8-11, mcq/rnd@1\\.\\.3/0-3, mcq/rnd@1\\.\\.3/12-13; shards not merged yet: 3/3 \\(run sweep --shard 3/3 and merge again\\)`,
      ),
    );
    const rep = await runCli(["report", partial, "-o", join(dir, "partial-report")]);
    assert.match(
      rep.stderr,
      new RegExp(`steerlab: warning: ${lacking} of the grid's ${single.length} cells have no result`),
    );
    const json = JSON.parse(readFileSync(join(dir, "partial-report", "report.json"), "utf8"));
    assert.equal(json.warnings.length, 1);
    assert.match(json.warnings[0], /cells have no result.*rerun the sweep to fill them/);
    assert.match(
      readFileSync(join(dir, "partial-report", "report.html"), "utf8"),
      /<section id="warnings".*have no result/,
    );
    // A shard folder on its own says it is one share.
    const one = await runCli(["report", join(dir, "s1"), "-o", join(dir, "s1-report")]);
    assert.match(
      one.stderr,
      /this folder is shard 1\/3: merge every shard \(steerlab merge\) for the whole grid/,
    );
  });

  test("the same files in another folder merge (identities compare without paths)", async () => {
    const moved = writeDemoSweep(join(dir, "elsewhere"));
    await steerlab(
      dir,
      "sweep",
      "-c",
      moved,
      "--shard",
      "2/3",
      "--threads",
      "1",
      "-o",
      join(dir, "s2-elsewhere"),
    );
    const out = JSON.parse(
      await steerlab(
        dir,
        "merge",
        join(dir, "s1"),
        join(dir, "s2-elsewhere"),
        "-o",
        join(dir, "m2"),
        "--json",
      ),
    );
    assert.equal(out.inputs[1].added, ResultStore.readRecords(join(dir, "s2")).length);
    assert.deepEqual(
      canon(ResultStore.readRecords(join(dir, "s2-elsewhere"))),
      canon(ResultStore.readRecords(join(dir, "s2"))),
    );
  });
});
