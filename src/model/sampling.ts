/**
 * Choosing the next token from a row of logits: greedy, or sampling with temperature, then top-k, then top-p
 * (the order Hugging Face applies them). Sampling is seeded (mulberry32 from random.ts), so a run is reproducible.
 */
import { SteerlabError } from "../errors.js";
import { rng } from "./random.js";

export interface SamplingOptions {
  /** 0 (default) = greedy. Otherwise logits are divided by it before the softmax. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or omitted = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose mass reaches p (1 or omitted = all). */
  topP?: number;
  /** Seed of the sampler's random stream. Default 0, so unseeded runs are reproducible too. */
  seed?: number;
}

/** log-softmax of logits[off .. off+n) in float64.   returns [n] */
export function logSoftmax(logits: ArrayLike<number>, off = 0, n = logits.length - off): Float64Array {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) if (logits[off + i]! > m) m = logits[off + i]!;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(logits[off + i]! - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = logits[off + i]! - lse;
  return out;
}

/** Index of the largest logit; ties go to the lowest id (as torch.argmax does). */
export function argmax(logits: Float32Array, off = 0, n = logits.length - off): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[off + i]! > logits[off + best]!) best = i;
  return best;
}

function checkOptions(o: SamplingOptions): void {
  const bad = (field: string, expected: string, got: unknown) =>
    new SteerlabError("bad_input", `bad sampling option ${field}`, { field, expected, got: String(got) });
  const t = o.temperature ?? 0;
  if (!(t >= 0) || !Number.isFinite(t)) throw bad("temperature", "a finite number >= 0", t);
  const k = o.topK ?? 0;
  if (!Number.isInteger(k) || k < 0) throw bad("topK", "an integer >= 0", k);
  const p = o.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw bad("topP", "a number in (0, 1]", p);
}

/**
 * The distribution sampling draws from: token ids (most likely first when top-k/top-p cut anything) and their renormalised probabilities
 * after temperature, top-k and top-p. Greedy (temperature 0) gives the argmax with probability 1.
 */
export function samplingDistribution(
  logits: Float32Array,
  o: SamplingOptions,
  off = 0,
  n = logits.length - off,
): { ids: number[]; probs: number[] } {
  checkOptions(o);
  const t = o.temperature ?? 0;
  if (t === 0) return { ids: [argmax(logits, off, n)], probs: [1] };
  const k = o.topK ? Math.min(o.topK, n) : n;
  const kept = Array.from({ length: n }, (_, i) => i);
  // Sorting the whole vocabulary is only needed when something is cut (ties: lower id first).
  if (k < n || (o.topP ?? 1) < 1) {
    kept.sort((a, b) => logits[off + b]! - logits[off + a]! || a - b);
    kept.length = k;
  }
  // Softmax over the kept tokens at this temperature (top-k first, then top-p on the renormalised mass).
  let m = Number.NEGATIVE_INFINITY;
  for (const i of kept) m = Math.max(m, logits[off + i]!);
  const w = kept.map((i) => Math.exp((logits[off + i]! - m) / t));
  let total = w.reduce((a, b) => a + b, 0);
  const p = o.topP ?? 1;
  let cut = kept.length;
  if (p < 1) {
    // Keep a token while the mass of the tokens ranked above it is still below p.
    let before = 0;
    for (let j = 0; j < kept.length; j++) {
      if (before >= p * total) {
        cut = j;
        break;
      }
      before += w[j]!;
    }
  }
  const ids = kept.slice(0, cut);
  total = w.slice(0, cut).reduce((a, b) => a + b, 0);
  return { ids, probs: w.slice(0, cut).map((x) => x / total) };
}

/** A seeded next-token chooser; one per generation call, drawn in row order so batches are reproducible. */
export interface Sampler {
  next(logits: Float32Array, off?: number, n?: number): number;
}

export function makeSampler(o: SamplingOptions = {}): Sampler {
  checkOptions(o);
  const u = rng(o.seed ?? 0);
  return {
    next(logits, off = 0, n = logits.length - off) {
      if ((o.temperature ?? 0) === 0) return argmax(logits, off, n);
      const d = samplingDistribution(logits, o, off, n);
      const x = u();
      let acc = 0;
      for (let j = 0; j < d.ids.length; j++) {
        acc += d.probs[j]!;
        if (x < acc) return d.ids[j]!;
      }
      return d.ids[d.ids.length - 1]!;
    },
  };
}
