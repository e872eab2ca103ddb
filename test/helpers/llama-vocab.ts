/**
 * llama.cpp's tokenizer test data, taken at test time from the llama.cpp sources that node-llama-cpp ships as a git
 * bundle: vocab-only GGUF files (models/ggml-vocab-NAME.gguf) and their test vectors (.inp: inputs separated by a
 * marker line; .out: one line of token ids per input, encoded without BOS and without parsing special tokens).
 *
 * The bundle is cloned (without checkout, ~1 s) once into a cache directory under os.tmpdir(); files are read from
 * it with `git show`. GGUF metadata is read with steerlab's own reader (src/io/gguf.ts).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseGguf } from "../../src/io/gguf.js";
import { plainMetadata } from "../../src/io/gguf-model.js";

/** Path of the llama.cpp git bundle inside node-llama-cpp, or null if the package is not installed. */
export function llamaBundlePath(): string | null {
  // The package's exports hide package.json, so look in node_modules above this file (works from dist/ too).
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const p = join(dir, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
    if (existsSync(p)) return p;
  }
  return null;
}

/** Clone the bundle once (no checkout) into os.tmpdir(); returns the git dir, or null without node-llama-cpp. */
export function llamaRepo(): string | null {
  const bundle = llamaBundlePath();
  if (!bundle) return null;
  const head =
    execFileSync("git", ["bundle", "list-heads", bundle], { encoding: "utf8" }).split(/\s/)[0] ?? "x";
  const dir = join(tmpdir(), `steerlab-llama-src-${head.slice(0, 12)}`);
  if (existsSync(join(dir, "HEAD"))) return dir;
  // Clone into a private temp dir and rename, so concurrent test files never see a half-made clone.
  const tmp = mkdtempSync(join(tmpdir(), "steerlab-llama-clone-"));
  execFileSync("git", ["clone", "-q", "--bare", bundle, join(tmp, "repo")], { stdio: "ignore" });
  try {
    renameSync(join(tmp, "repo"), dir);
  } catch {
    if (!existsSync(join(dir, "HEAD"))) throw new Error(`could not create ${dir}`);
  }
  rmSync(tmp, { recursive: true, force: true });
  return dir;
}

let cachedRepo: string | null | undefined;

/** The llama.cpp sources (cloned once per process), or an error naming the missing dev dependency. */
export function requireLlamaRepo(): string {
  cachedRepo ??= llamaRepo();
  if (!cachedRepo)
    throw new Error("node-llama-cpp (dev dependency) with its llama.cpp bundle is required for these tests");
  return cachedRepo;
}

/** One file of the llama.cpp sources at the bundle's HEAD. */
export function llamaFile(repo: string, path: string): Buffer {
  return execFileSync("git", ["--git-dir", repo, "show", `HEAD:${path}`], { maxBuffer: 1 << 28 });
}

export interface VocabCase {
  input: string;
  ids: number[];
}

/** Test vectors of one vocab, as llama.cpp's test-tokenizer-0 reads them (duplicate inputs keep the last). */
export function vocabCases(repo: string, name: string): VocabCase[] {
  const inp = llamaFile(repo, `models/ggml-vocab-${name}.gguf.inp`).toString("utf8");
  const out = llamaFile(repo, `models/ggml-vocab-${name}.gguf.out`).toString("utf8");
  const sep = "\n__ggml_vocab_test__\n";
  const inputs: string[] = [];
  let pos = 0;
  while (pos < inp.length) {
    const next = inp.indexOf(sep, pos);
    if (next < 0) {
      inputs.push(inp.slice(pos));
      break;
    }
    inputs.push(inp.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = out.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length !== inputs.length) {
    throw new Error(`${name}: ${inputs.length} inputs but ${lines.length} outputs`);
  }
  const cases = new Map<string, number[]>();
  inputs.forEach((input, i) => {
    const line = (lines[i] as string).trim();
    cases.set(input, line === "" ? [] : line.split(" ").map(Number));
  });
  return [...cases].map(([input, ids]) => ({ input, ids }));
}

/** The metadata of models/ggml-vocab-NAME.gguf. */
export function vocabMetadata(repo: string, name: string): Map<string, unknown> {
  const file = `models/ggml-vocab-${name}.gguf`;
  return plainMetadata(parseGguf(llamaFile(repo, file), file).header.metadata);
}

/** models/ggml-vocab-NAME.gguf written to a file (for llama.cpp itself, which loads from a path). */
export function vocabFile(repo: string, name: string): string {
  const path = join(`${repo}-files`, `ggml-vocab-${name}.gguf`);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, llamaFile(repo, `models/ggml-vocab-${name}.gguf`));
    renameSync(tmp, path);
  }
  return path;
}

/** Every mismatch of a tokenizer against a vocab's test vectors (encode without BOS; decode of the expected ids). */
export function vocabFailures(
  tok: {
    encode(t: string, o?: { addSpecialTokens?: boolean }): number[];
    decode(ids: readonly number[]): string;
  },
  cases: readonly VocabCase[],
): string[] {
  const failures: string[] = [];
  for (const c of cases) {
    const got = tok.encode(c.input, { addSpecialTokens: false });
    if (JSON.stringify(got) !== JSON.stringify(c.ids)) {
      failures.push(`encode ${JSON.stringify(c.input)}: got ${got.join(" ")}; expected ${c.ids.join(" ")}`);
    }
    const text = tok.decode(c.ids);
    if (text !== c.input) failures.push(`decode ${JSON.stringify(c.input)}: got ${JSON.stringify(text)}`);
  }
  return failures;
}
