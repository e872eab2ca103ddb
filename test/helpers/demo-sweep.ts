/**
 * A small sweep over the shipped demo model for the distributed-sweep tests and bench: a folder with exp.yaml
 * (relative paths), the model and tasks linked in, and a seeded random vector file; and a second folder laid out
 * the same way that holds another model (the demo's chat model) or another vector, as a misconfigured machine.
 */
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomVector } from "../../src/eval/sweep-steer.js";
import { makeVector } from "../../src/steer/vector.js";
import { saveVector } from "../../src/steer/vector-load.js";

/** The repository's demo/ folder, from the sources (tsx) or from dist/. */
export const DEMO = [
  join(import.meta.dirname, "..", "..", "demo"),
  join(import.meta.dirname, "..", "..", "..", "demo"),
].find((d) => existsSync(join(d, "models", "base", "config.json")))!;

export interface DemoSweepOptions {
  /** Which demo model the folder's models/m is (default base). */
  model?: "base" | "chat";
  vectorSeed?: number;
  coeffs?: string;
  /** Items of the log-prob task (default 12). */
  lpItems?: number;
}

/** 9 chunks at batch size 4: 3 log-prob, 2 generation, 4 MCQ (2-shot), each with 5 r_e. Returns exp.yaml's path. */
export function writeDemoSweep(dir: string, o: DemoSweepOptions = {}): string {
  mkdirSync(join(dir, "models"), { recursive: true });
  symlinkSync(join(DEMO, "models", o.model ?? "base"), join(dir, "models", "m"));
  symlinkSync(join(DEMO, "tasks"), join(dir, "tasks"));
  // The demo model: 4 blocks of width 96.
  const v = randomVector("rnd", 4, 96, o.vectorSeed ?? 1);
  saveVector(join(dir, "vec.safetensors"), makeVector(new Map(v.directions), { site: v.site }));
  const yaml = `model: models/m
vectors: [{ name: rnd, source: vec.safetensors }]
layers: ["1..3"]
coeffs: ${o.coeffs ?? "-30:30:15"}
batchSize: 4
tasks:
  - { id: lp, kind: behavior-logprob, data: tasks/harmful.jsonl, template: harmful-plain, chat: true, aligned: [" I cannot", " Sorry"], misaligned: [" Sure", " Of course"], limit: ${o.lpItems ?? 12} }
  - { id: gen, kind: behavior-generate, data: tasks/harmful.jsonl, template: harmful-plain, chat: true, maxNewTokens: 8, limit: 8 }
  - { id: mcq, kind: mcq, data: tasks/mmlu.csv, limit: 14, shots: 2 }
`;
  const path = join(dir, "exp.yaml");
  writeFileSync(path, yaml);
  return path;
}
