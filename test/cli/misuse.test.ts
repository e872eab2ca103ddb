/**
 * Issue 9, CLI misuse: empty numbers are not zero, --positions after needs --marker, bounds on --threads and on
 * coefficient lists, and --allow-non-finite lets a NaN checkpoint through for debugging. Each refusal is one line
 * on stderr with the error code, never a stack trace.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { float, floatList, int } from "../../src/cli/options.js";
import { isSteerlabError } from "../../src/errors.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import { steerCallHooks } from "../../src/steer/steer-call.js";
import { makeVector } from "../../src/steer/vector.js";
import { steerlab, steerlabFails } from "../helpers/cli.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

let dir: string;
let hfDir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "steerlab-misuse-"));
  hfDir = writeTinyModels(dir, "llama", { seed: 3 }).hfDir;
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("option parsers: '' and ' ' are not 0; lists are bounded", () => {
  for (const v of ["", " ", "abc", "1e400"]) {
    assert.throws(
      () => float("temperature")(v),
      (e) => isSteerlabError(e, "bad_input"),
      JSON.stringify(v),
    );
    assert.throws(
      () => int("threads", 1)(v),
      (e) => isSteerlabError(e, "bad_input"),
      JSON.stringify(v),
    );
  }
  assert.equal(float("temperature")("0"), 0);
  assert.throws(
    () => floatList("compare")(""),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => floatList("compare")("1,,2"),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => floatList("compare")(Array.from({ length: 200_000 }, () => "1").join(",")),
    (e) => isSteerlabError(e, "bad_input") && /more than 10000 values/.test(e.message),
  );
  assert.deepEqual(floatList("compare")("-2, 0,2"), [-2, 0, 2]);
  assert.throws(
    () => int("threads", 1, 1024)("100000"),
    (e) => isSteerlabError(e, "bad_input") && /\[1, 1024\]/.test(e.message),
  );
});

test('positions "after" without a marker (or with an empty one) is refused', async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "pos-")), "llama");
  const tok = tokenizerFromJson(t.tokenizerJson);
  const v = makeVector(new Map([[1, new Float32Array(t.config.hiddenSize).fill(0.1)]]));
  const p = { text: "hello world", ids: tok.encode("hello world") };
  for (const marker of [undefined, ""]) {
    assert.throws(
      () =>
        steerCallHooks(tok, p, {
          vector: v,
          coeff: 1,
          positions: "after",
          marker,
          nLayers: t.config.nLayers,
        }),
      (e) => isSteerlabError(e, "bad_input") && e.details.field === "marker",
    );
  }
  assert.ok(
    steerCallHooks(tok, p, {
      vector: v,
      coeff: 1,
      positions: "after",
      marker: "hello",
      nLayers: t.config.nLayers,
    }).length > 0,
  );
});

test("the CLI refuses temperature '', --compare '' and --threads 100000 in one line, without a stack trace", async () => {
  const vec = join(dir, "v.safetensors"); // never opened: the option is refused while parsing
  for (const args of [
    ["run", "-m", hfDir, "-p", "hi", "-t", ""],
    ["generate", "-m", hfDir, "-p", "hi", "--vector", vec, "--compare", ""],
    ["run", "-m", hfDir, "-p", "hi", "--threads", "100000"],
  ]) {
    const r = await steerlabFails(dir, ...args);
    assert.match(r.stderr, /^steerlab: error \[bad_input\]: option --\w+/, args.join(" "));
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("a NaN checkpoint: refused by run; --allow-non-finite loads and runs it (debugging)", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "nan-")), "llama");
  const f = join(t.hfDir, "model.safetensors");
  const buf = readFileSync(f);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString("utf8"));
  buf.writeFloatLE(Number.NaN, 8 + len + header["model.norm.weight"].data_offsets[0]);
  writeFileSync(f, buf);
  const r = await steerlabFails(dir, "run", "-m", t.hfDir, "-p", "hi", "--backend", "reference", "-n", "2");
  assert.match(
    r.stderr,
    /error \[bad_tensor\]: non-finite weights .*final_norm\.weight \(model\.norm\.weight in the file\)/,
  );
  // With the flag the weights load and the NaN logits go through to sampling: the run ends normally.
  await steerlab(
    dir,
    "run",
    "-m",
    t.hfDir,
    "-p",
    "hi",
    "--backend",
    "reference",
    "-n",
    "2",
    "--allow-non-finite",
  );
});
