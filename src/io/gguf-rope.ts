/**
 * llama3 RoPE scaling in GGUF. llama.cpp has no metadata for it: convert_hf_to_gguf.py writes a
 * `rope_freqs.weight` tensor [hd/2] of per-frequency divisors computed from the HF rope_scaling parameters.
 * steerlab writes that tensor the same way, plus the parameters under `steerlab.rope_scaling.*` (llama.cpp
 * ignores those keys) so that they round-trip exactly; for files from elsewhere they are recovered from the
 * divisors (parameters giving the same divisors give the same model).
 */
import { SteerlabError } from "../errors.js";
import type { ModelConfig, RopeScaling } from "../model/config.js";
import { type GgufMetadata, metaNumber } from "./gguf.js";

export const ROPE_FREQS = "rope_freqs.weight";

/** The shortest decimal that rounds to the same float32 (so 1e-5 stored as f32 reads back as 1e-5). */
export function f32Decimal(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const v = Number(x.toPrecision(p));
    if (Math.fround(v) === x) return v;
  }
  return x;
}

export type Llama3 = Extract<RopeScaling, { type: "llama3" }>;

/** Per-frequency divisors exactly as convert_hf_to_gguf computes them (frequencies in float32). */
export function llama3RopeFactors(headDim: number, theta: number, s: Llama3): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth =
        (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

export function factorsMatch(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) <= 1e-4 * Math.max(1, Math.abs(x)));
}

/**
 * Recover llama3 parameters from the divisors of a file steerlab did not write. Only the two threshold
 * wavelengths matter (original/low and original/high), so lowFreqFactor is fixed at 1 and the rest is solved
 * from the interpolated band; the result is checked by recomputing every divisor.
 */
export function llama3FromFactors(f: Float32Array, c: ModelConfig, file: string): RopeScaling | null {
  const factor = Math.max(...f);
  if (f.every((x) => Math.abs(x - 1) < 1e-6)) return null;
  if (f.every((x) => Math.abs(x - factor) < 1e-6 * factor)) return { type: "linear", factor };
  const lam = [...f].map(
    (_, i) => (2 * Math.PI) / Math.fround(1 / Math.fround(c.ropeTheta ** Math.fround((2 * i) / c.headDim))),
  );
  const isOne = (x: number) => Math.abs(x - 1) < 1e-6;
  const isFull = (x: number) => Math.abs(x - factor) < 1e-6 * factor;
  const smooth: number[] = [];
  f.forEach((x, i) => {
    if (!isOne(x) && !isFull(x)) smooth.push(i);
  });
  const sOf = (i: number) => (1 / f[i]! - 1 / factor) / (1 - 1 / factor);
  const lastOne = [...f].map((x, i) => (isOne(x) ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
  const firstFull = [...f].findIndex(isFull);
  let L: number;
  let hi: number;
  if (smooth.length >= 2) {
    // s = A / lambda - B with A = L / (hi - 1), B = 1 / (hi - 1).
    const i1 = smooth[0]!;
    const i2 = smooth[smooth.length - 1]!;
    const A = (sOf(i1) - sOf(i2)) / (1 / lam[i1]! - 1 / lam[i2]!);
    const B = A / lam[i1]! - sOf(i1);
    hi = 1 + 1 / B;
    L = A / B;
  } else if (smooth.length === 1) {
    const i = smooth[0]!;
    L = firstFull >= 0 ? Math.sqrt(lam[i]! * lam[firstFull]!) : 2 * lam[i]!;
    hi = 1 + (L / lam[i]! - 1) / sOf(i);
  } else {
    const a = lastOne >= 0 ? lam[lastOne]! : lam[0]! / 2;
    const b = lam[firstFull]!;
    const highW = a ** (2 / 3) * b ** (1 / 3);
    L = a ** (1 / 3) * b ** (2 / 3);
    hi = L / highW;
  }
  const s: Llama3 = { type: "llama3", factor, lowFreqFactor: 1, highFreqFactor: hi, originalMaxPositions: L };
  if (
    !(Number.isFinite(hi) && hi > 1 && L > 0) ||
    !factorsMatch(llama3RopeFactors(c.headDim, c.ropeTheta, s), f)
  ) {
    throw new SteerlabError("unsupported", `${ROPE_FREQS} does not follow the llama3 RoPE scaling formula`, {
      file,
      field: ROPE_FREQS,
      got: `[${[...f].map((x) => x.toPrecision(4)).join(", ")}]`,
    });
  }
  return s;
}

/** The llama3 parameters steerlab wrote, if any. */
export function steerlabLlama3(meta: GgufMetadata, file: string): Llama3 | null {
  const g = (k: string) => {
    const v = metaNumber(meta, `steerlab.rope_scaling.${k}`, file);
    return v === undefined ? v : f32Decimal(v);
  };
  const [factor, lo, hi, orig] = [
    g("factor"),
    g("low_freq_factor"),
    g("high_freq_factor"),
    g("original_max_positions"),
  ];
  if (factor === undefined || lo === undefined || hi === undefined || orig === undefined) return null;
  return { type: "llama3", factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: orig };
}
