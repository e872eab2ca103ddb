/**
 * The engine and steering commands through the CLI on tiny random models in both formats: inspect, run,
 * logprobs, extract, vector info/convert/combine, generate --compare; every command answers --help, and a vector
 * made for another model is refused with a message that says why.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { steerlab, steerlabFails } from "../helpers/cli.js";
import { type TinyModel, writeTinyModels } from "../helpers/tiny-models.js";

let dir: string;
let llama: TinyModel;
let gpt2: TinyModel;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "steerlab-cli-"));
  llama = writeTinyModels(dir, "llama", { seed: 3 });
  gpt2 = writeTinyModels(dir, "gpt2", { seed: 3 });
  const pairs = [
    "pick a lock",
    "steal a car",
    "make a weapon",
    "hack a phone",
    "forge a cheque",
    "cheat a test",
  ].map((x) =>
    JSON.stringify({
      prompt: `User: ${x}\nAssistant:`,
      positive: " I cannot help.",
      negative: " Sure, here.",
    }),
  );
  writeFileSync(join(dir, "pairs.jsonl"), `${pairs.join("\n")}\n`);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("every command answers --help", async () => {
  for (const cmd of [
    "inspect",
    "run",
    "logprobs",
    "extract",
    "generate",
    "vector",
    "sweep",
    "fit",
    "report",
  ]) {
    const out = await steerlab(dir, cmd, "--help");
    assert.match(out, /Usage: steerlab/, cmd);
  }
});

test("inspect: both formats of the same weights describe the same model", async () => {
  const hf = JSON.parse(await steerlab(dir, "inspect", llama.hfDir, "--json"));
  const gguf = JSON.parse(await steerlab(dir, "inspect", llama.ggufFile, "--json"));
  assert.equal(hf.arch, "llama");
  assert.equal(hf.format, "hf");
  assert.equal(gguf.format, "gguf");
  assert.equal(hf.fingerprint, gguf.fingerprint);
  assert.deepEqual(hf.config, gguf.config);
  assert.equal(hf.parameters, 170432);
});

test("run and logprobs agree: the greedy first token is the top log-prob", async () => {
  const lp = JSON.parse(
    await steerlab(dir, "logprobs", "-m", llama.ggufFile, "--text", "Hello", "--top", "3", "--json"),
  );
  assert.equal(lp.top.length, 3);
  assert.ok(lp.top[0].logprob >= lp.top[1].logprob);
  const text = await steerlab(dir, "run", "-m", llama.ggufFile, "-p", "Hello", "-n", "1");
  assert.equal(text, `${lp.top[0].text}\n`);
});

test("extract, vector info/convert/combine, generate --compare", async () => {
  const out = await steerlab(
    dir,
    "extract",
    "-m",
    llama.hfDir,
    "--pairs",
    "pairs.jsonl",
    "-o",
    "v.safetensors",
  );
  assert.match(out, /suggested layers/);
  const info = JSON.parse(await steerlab(dir, "vector", "info", "v.safetensors", "--json"));
  assert.deepEqual(info.layers, [0, 1, 2]);
  for (const n of Object.values(info.norms) as number[]) assert.ok(Math.abs(n - 1) < 1e-5);
  assert.equal(info.model.arch, "llama");

  await steerlab(dir, "vector", "convert", "v.safetensors", "v.gguf");
  const g = JSON.parse(await steerlab(dir, "vector", "info", "v.gguf", "--json"));
  assert.deepEqual(g.layers, [1, 2], "llama.cpp never steers block 0: export drops it");

  await steerlab(
    dir,
    "vector",
    "combine",
    "v.safetensors",
    "v.safetensors",
    "--weights",
    "1,-1",
    "-o",
    "zero.safetensors",
  );
  const zero = JSON.parse(await steerlab(dir, "vector", "info", "zero.safetensors", "--json"));
  for (const n of Object.values(zero.norms) as number[]) assert.equal(n, 0);

  const args = [
    "generate",
    "-m",
    llama.ggufFile,
    "--vector",
    "v.safetensors",
    "-p",
    "User: hi",
    "-n",
    "8",
    "--layers",
    "all",
  ];
  const cmp = JSON.parse(await steerlab(dir, ...args, "--compare", "-8,0,8", "--json"));
  assert.deepEqual(
    cmp.results.map((r: { coeff: number }) => r.coeff),
    [-8, 0, 8],
  );
  const plain = await steerlab(dir, "run", "-m", llama.ggufFile, "-p", "User: hi", "-n", "8");
  assert.equal(`${cmp.results[1].text}\n`, plain, "r_e = 0 is the unsteered generation");
  assert.notEqual(cmp.results[0].text, cmp.results[2].text, "opposite coefficients steer apart");
  const side = await steerlab(dir, ...args, "--compare", "-8,0,8");
  assert.match(side, /r_e = -8 .*\| r_e = 0 .*\| r_e = 8/);
});

test("a vector for another model is refused with the reasons", async () => {
  await steerlab(
    dir,
    "extract",
    "-m",
    llama.hfDir,
    "--pairs",
    "pairs.jsonl",
    "-o",
    "w.safetensors",
    "--json",
  );
  const r = await steerlabFails(dir, "generate", "-m", gpt2.hfDir, "--vector", "w.safetensors", "-p", "x");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /mismatch/);
  assert.match(r.stderr, /architecture: vector made for llama, model is gpt2/);
  assert.match(r.stderr, /file: w\.safetensors/);
  const bad = await steerlabFails(dir, "inspect", join(dir, "nope.gguf"));
  assert.match(bad.stderr, /nope\.gguf/);
});
