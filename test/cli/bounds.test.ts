/**
 * Numeric and shape flags are bounded in one place (src/cli/options.ts): absurd values ("1e12"), reversed layer
 * ranges, out-of-range seeds, probabilities and unknown vector extensions are refused with the flag, what was
 * expected and what was given; values that depend on the model (-n against its context, --top against its
 * vocabulary, a mixed-sign layer range) are checked once it is loaded, not silently capped.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { float, int, LIMITS, layerSpec, layersFor, seed, vectorOutput } from "../../src/cli/options.js";
import { isSteerlabError } from "../../src/errors.js";
import { steerlabFails } from "../helpers/cli.js";
import { type TinyModel, writeTinyModels } from "../helpers/tiny-models.js";

let dir: string;
let tiny: TinyModel;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "steerlab-bounds-"));
  tiny = writeTinyModels(dir, "llama", { seed: 3 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const refused = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e) => isSteerlabError(e, "bad_input") && re.test(e.message));

test("integers stop at a bound of their own, or at INT_MAX: 1e12 is a typo, not a request", () => {
  refused(
    () => int("max-tokens", 1, LIMITS.maxTokens)("1e12"),
    /^option --max-tokens must be an integer in \[1, 1048576\]; field: max-tokens; got: "1e12"$/,
  );
  refused(
    () => int("lock-duration", 1000)("1e12"),
    /--lock-duration must be an integer in \[1000, 2147483647\]/,
  );
  assert.equal(int("n", 1)("2147483647"), 2 ** 31 - 1);
  refused(() => seed("seed")(String(2 ** 32)), /--seed must be an integer in \[0, 4294967295\]/);
  refused(() => seed("seed")("-1"), /--seed must be an integer in \[0, 4294967295\]/);
  refused(
    () => float("top-p", { min: 0, minOpen: true, max: 1 })("0"),
    /--top-p must be a number > 0 and <= 1/,
  );
  refused(
    () => float("top-p", { min: 0, minOpen: true, max: 1 })("1.5"),
    /--top-p must be a number > 0 and <= 1/,
  );
  refused(
    () => float("temperature", { min: 0 })("-0.5"),
    /--temperature must be a number >= 0; .*got: "-0.5"/,
  );
});

test("layer ranges must run upwards; mixed signs are checked against the model's block count", () => {
  refused(
    () => layerSpec("layers")("3..1"),
    /^option --layers: the range 3..1 runs backwards; field: layers; expected: A..B with A <= B, e.g. 1..3; got: "3..1"$/,
  );
  refused(() => layerSpec("layers")("0,-1..-8"), /the range -1..-8 runs backwards.*e\.g\. -8..-1/);
  refused(() => layerSpec("layers")("2..x"), /"2..x" is not a layer or a range/);
  for (const ok of ["all", "3", "1..3", "-8..-1", "1..-1", "0,2,4"])
    assert.equal(layerSpec("layers")(ok), ok);
  refused(
    () => layersFor("layers", "3..-2", 4),
    /the range 3..-2 runs backwards \(blocks 3..2 of 4\).*e\.g\. 2..3/,
  );
  assert.deepEqual(layersFor("layers", "1..-1", 4), [1, 2, 3]);
  assert.deepEqual(layersFor("layers", "-3..-2", 4), [1, 2]);
});

test("an output vector's extension must say its format", () => {
  refused(
    () => vectorOutput("output", "out.txt"),
    /the output vector out.txt has an unknown extension; field: output; expected: .safetensors .* or .gguf .*; got: .txt/,
  );
  assert.equal(vectorOutput("output", "x.GGUF"), "x.GGUF");
});

test("the commands refuse them on the command line, before anything is loaded or written", async () => {
  const m = tiny.hfDir;
  const cases: [string[], RegExp][] = [
    [["run", "-m", m, "-p", "hi", "-n", "1e12"], /option --max-tokens must be an integer in \[1, 1048576\]/],
    [
      ["logprobs", "-m", m, "--text", "hi", "--top", "1e9"],
      /option --top must be an integer in \[1, 1048576\]/,
    ],
    [
      ["extract", "-m", m, "--pairs", "p.jsonl", "--layers", "3..1", "-o", join(dir, "v.safetensors")],
      /option --layers: the range 3..1 runs backwards/,
    ],
    [
      ["vector", "convert", "in.safetensors", join(dir, "out.txt")],
      /the output vector .*out.txt has an unknown extension/,
    ],
    [
      ["vector", "combine", "a.safetensors", "-o", join(dir, "c.npy")],
      /the output vector .*c.npy has an unknown extension/,
    ],
    [
      ["extract", "-m", m, "--pairs", "p.jsonl", "-o", join(dir, "v.bin")],
      /the output vector .*v.bin has an unknown extension/,
    ],
    [
      ["sweep", "-m", m, "--layers", "-1..-3", "-o", join(dir, "s")],
      /option --layers: the range -1..-3 runs backwards/,
    ],
    [["fit", "x.json", "--n", "abc"], /option --n must be an integer in \[1, 2147483647\]/],
    [
      ["worker", "--queue", "redis://127.0.0.1:1", "--lock-duration", "1e12"],
      /option --lock-duration must be an integer in \[1000, 2147483647\]/,
    ],
    [
      ["worker", "--queue", "redis://127.0.0.1:1", "--concurrency", "100000"],
      /option --concurrency must be an integer in \[1, 64\]/,
    ],
    [["serve", "-m", m, "--parallel", "1e6"], /option --parallel must be an integer in \[1, 256\]/],
    [
      ["run", "-m", m, "-p", "hi", "--seed", "4294967296"],
      /option --seed must be an integer in \[0, 4294967295\]/,
    ],
    [["run", "-m", m, "-p", "hi", "--top-p", "2"], /option --top-p must be a number > 0 and <= 1/],
  ];
  for (const [args, re] of cases) {
    const r = await steerlabFails(dir, ...args);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, new RegExp(`^steerlab: error \\[bad_input\\]: ${re.source}`), args.join(" "));
  }
  assert.equal(existsSync(join(dir, "out.txt")), false);
});

test("values beyond the loaded model's context or vocabulary are refused, naming the model's limit", async () => {
  const m = tiny.hfDir;
  const ctx = tiny.config.maxPositions;
  const vocab = tiny.config.vocabSize;
  const n = await steerlabFails(
    dir,
    "run",
    "-m",
    m,
    "-p",
    "hi",
    "-n",
    String(ctx + 1),
    "--backend",
    "reference",
  );
  assert.match(
    n.stderr,
    new RegExp(
      `option --max-tokens is more than the model's context \\(${ctx} positions\\); field: max-tokens; expected: at most ${ctx}; got: ${ctx + 1}`,
    ),
  );
  const top = await steerlabFails(
    dir,
    "logprobs",
    "-m",
    m,
    "--text",
    "hi",
    "--top",
    String(vocab + 1),
    "--backend",
    "reference",
  );
  assert.match(top.stderr, new RegExp(`option --top is more than the vocabulary \\(${vocab} tokens\\)`));
});
