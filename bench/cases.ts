/**
 * What the engine bench measures, shared by its runners (ONNX Runtime, llama.cpp): the model shapes, the
 * measurement constants, and small helpers for memory and prompts.
 */
import { readFileSync } from "node:fs";
import v8 from "node:v8";
import vm from "node:vm";
import type { ModelConfig } from "../src/model/config.js";
import { rng } from "../src/model/random.js";

export const BENCH_CONFIGS: Record<string, ModelConfig> = {
  llama: {
    arch: "llama",
    vocabSize: 32000,
    hiddenSize: 768,
    nLayers: 12,
    nHeads: 12,
    nKvHeads: 12,
    headDim: 64,
    intermediateSize: 2048,
    normEps: 1e-5,
    maxPositions: 1024,
    ropeTheta: 10000,
    ropeScaling: null,
    tiedEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  },
  gpt2: {
    arch: "gpt2",
    vocabSize: 50257,
    hiddenSize: 768,
    nLayers: 12,
    nHeads: 12,
    nKvHeads: 12,
    headDim: 64,
    intermediateSize: 3072,
    normEps: 1e-5,
    maxPositions: 1024,
    ropeTheta: 0,
    ropeScaling: null,
    tiedEmbeddings: true,
    bosTokenId: 50256,
    eosTokenIds: [50256],
  },
};

export interface BenchCase {
  model: keyof typeof BENCH_CONFIGS;
  backend: string;
  granularity: "site" | "block";
  threads: number;
  spin: boolean;
  arena: boolean;
}

export interface BenchRow extends BenchCase {
  weightMiB: number;
  buildS: number;
  prefillTokS: number;
  decodeTokS: number;
  /** Decode tokens/s after a LONG_PROMPT-token prompt. */
  decodeLongTokS: number;
  /** Peak resident set of the whole process, MiB (weights generated in JS included). */
  peakRssMiB: number;
  /** Resident set after the engine is built and the JS weights are dropped, MiB. */
  steadyRssMiB: number;
  /** Resident set before the weights exist (Node, tsx, onnxruntime loaded), MiB. */
  baseRssMiB: number;
}

export const PROMPT = 128;
export const DECODE_PROMPT = 16;
/** A second decode measurement deep into the context, where the KV cache dominates. */
export const LONG_PROMPT = 448;
export const DECODE_STEPS = 64;
export const MiB = 1024 * 1024;

export function vmKiB(field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

export function ids(n: number, vocab: number, seed: number): number[] {
  const u = rng(seed);
  return Array.from({ length: n }, () => Math.floor(u() * vocab));
}

/** A real GC for the measurements (bench only; the library never forces one). */
export function collect(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

/** What a runner drives: a fresh single sequence, prefill of a prompt, and one decode step. */
export interface SequenceDriver {
  reset(): Promise<void>;
  prefill(ids: number[]): Promise<void>;
  step(id: number): Promise<void>;
}

/**
 * The shared measurement: best-of-5 prefill of the PROMPT-token prompt, then DECODE_STEPS one-token steps after
 * a DECODE_PROMPT and a LONG_PROMPT prompt (best of 3 and 2). The same token ids for every runner.
 */
export interface SpeedPlan {
  prompt: number;
  decodePrompt: number;
  longPrompt: number;
  steps: number;
  prefillReps: number;
  decodeReps: number;
  longReps: number;
  /** Tokens of the untimed warm-up prefill (default: the whole prompt). */
  warmupPrompt?: number;
}

export const DEFAULT_PLAN: SpeedPlan = {
  prompt: PROMPT,
  decodePrompt: DECODE_PROMPT,
  longPrompt: LONG_PROMPT,
  steps: DECODE_STEPS,
  prefillReps: 5,
  decodeReps: 3,
  longReps: 2,
};

export async function measureSpeed(
  vocab: number,
  d: SequenceDriver,
  plan: SpeedPlan = DEFAULT_PLAN,
): Promise<{ prefillTokS: number; decodeTokS: number; decodeLongTokS: number }> {
  const prompt = ids(plan.prompt, vocab, 2);
  await d.reset();
  await d.prefill(prompt.slice(0, plan.warmupPrompt ?? plan.prompt)); // warm-up
  const pre: number[] = [];
  for (let r = 0; r < plan.prefillReps; r++) {
    await d.reset();
    const s = performance.now();
    await d.prefill(prompt);
    pre.push(performance.now() - s);
  }
  const decode = async (promptLen: number, reps: number): Promise<number> => {
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      await d.reset();
      await d.prefill(ids(promptLen, vocab, 3));
      const next = ids(plan.steps, vocab, 4);
      const s = performance.now();
      for (const id of next) await d.step(id);
      times.push(performance.now() - s);
    }
    return plan.steps / (Math.min(...times) / 1000);
  };
  return {
    prefillTokS: plan.prompt / (Math.min(...pre) / 1000),
    decodeTokS: await decode(plan.decodePrompt, plan.decodeReps),
    decodeLongTokS: await decode(plan.longPrompt, plan.longReps),
  };
}
