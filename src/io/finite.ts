/**
 * One policy for non-finite numbers (NaN, +-Inf): weights, steering directions and forward outputs are checked
 * where they enter or leave the engine, and a SteerlabError names the file, the tensor, the layer and the index.
 * `allowNonFinite` turns the checks off, for debugging a broken checkpoint.
 *
 * Engines compute in float32, so a value is also refused when its square overflows float32 in a direction (a
 * norm that is Inf in f32 turns every normalised activation into NaN): FLT_MAX ~ 3.4e38, sqrt ~ 1.8e19.
 */
import { SteerlabError } from "../errors.js";
import { denseWeight, isQuant, type Weight } from "../model/weights.js";
import { firstNonFinite } from "../tensor.js";
import { blocksAllFinite } from "./gguf-quant.js";

/** The largest f32 number; a direction's squared norm must stay below it. */
export const F32_MAX = 3.4028234663852886e38;

export interface FiniteOptions {
  /** Skip the check (debugging only: NaN/Inf then flow into every output). */
  allowNonFinite?: boolean;
}

const HINT =
  "the file is corrupt or was written from a diverged run; allowNonFinite (--allow-non-finite) skips this check for debugging";

/** "blocks.3.attn.q.weight" -> 3; null for tensors outside blocks. */
function layerOf(name: string): number | null {
  const m = /(?:^|\.)(?:blocks|blk|layers|h)\.(\d+)\./.exec(name) ?? /^direction\.(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Row-major coordinates of flat index i in `shape`, e.g. "[2, 17]". */
function coords(i: number, shape: readonly number[]): string {
  const out: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    out.unshift(n > 0 ? i % n : 0);
    i = n > 0 ? Math.floor(i / n) : 0;
  }
  return `[${out.join(", ")}]`;
}

/** Describe the first non-finite value of `data`, or null when every value is finite. */
export function nonFiniteProblem(
  name: string,
  data: Float32Array,
  shape: readonly number[],
  fileName?: string,
): string | null {
  const i = firstNonFinite(data);
  if (i < 0) return null;
  const layer = layerOf(name);
  const inFile = fileName && fileName !== name ? ` (${fileName} in the file)` : "";
  return `tensor ${name}${inFile}${layer === null ? "" : `, layer ${layer}`}: ${data[i]} at index ${i} ${coords(i, shape)}`;
}

/**
 * Describe the first non-finite value of a weight, or null. A block-quantized weight is judged by its block
 * scales alone (blocksAllFinite), and decoded only to name the index when one is bad.
 */
export function weightProblem(name: string, w: Weight, fileName?: string): string | null {
  if (isQuant(w) && blocksAllFinite(w.ggmlType, w.bytes) === true) return null;
  const t = denseWeight(w);
  return nonFiniteProblem(name, t.data, t.shape, fileName);
}

/**
 * Check every tensor of a checkpoint; one error lists every bad tensor (its first bad value). One pass over the
 * weights at load time: 4-6 ns per f32 value on this (shared, loaded) machine (bench/guards.bench.ts), one
 * f16 scale per block for quantized weights.
 */
export function checkFiniteTensors(
  tensors: Iterable<[string, Weight]>,
  file: string,
  opts: FiniteOptions & { fileName?: (name: string) => string } = {},
): void {
  if (opts.allowNonFinite) return;
  const problems: string[] = [];
  for (const [name, t] of tensors) {
    const p = weightProblem(name, t, opts.fileName?.(name));
    if (p) problems.push(p);
  }
  if (problems.length) throw nonFiniteWeights(problems, file);
}

export function nonFiniteWeights(problems: string[], file: string): SteerlabError {
  return new SteerlabError(
    "bad_tensor",
    `non-finite weights in ${problems.length} tensor(s): ${problems[0]}`,
    {
      file,
      problems,
      hint: HINT,
    },
  );
}

/** A steering direction: finite, and its squared norm finite in float32. Returns the problem or null. */
export function directionProblem(layer: number, v: Float32Array): string | null {
  const p = nonFiniteProblem(`direction.${layer}`, v, [v.length]);
  if (p) return p;
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  if (!(s <= F32_MAX)) {
    return `direction.${layer} (layer ${layer}): norm ${Math.sqrt(s).toExponential(3)} overflows float32 when squared (limit ${Math.sqrt(F32_MAX).toExponential(3)})`;
  }
  return null;
}

/** Check steering directions (layer -> values); one error lists every bad layer. */
export function checkFiniteDirections(
  directions: Map<number, Float32Array>,
  file: string | undefined,
  opts: FiniteOptions = {},
): void {
  if (opts.allowNonFinite) return;
  const problems: string[] = [];
  for (const [l, v] of directions) {
    const p = directionProblem(l, v);
    if (p) problems.push(p);
  }
  if (problems.length) {
    throw new SteerlabError("bad_tensor", `steering vector has unusable values: ${problems[0]}`, {
      ...(file ? { file } : {}),
      problems,
      hint: HINT,
    });
  }
}

/**
 * A forward's output (logits [B, T, V] or hidden states): one pass; an error says which row went non-finite and
 * what usually causes it (a coefficient so large that the residual overflows float32, or a hook writing NaN).
 */
export function checkFiniteOutput(
  data: Float32Array,
  rowSize: number,
  what: string,
  opts: FiniteOptions = {},
): void {
  if (opts.allowNonFinite) return;
  const i = firstNonFinite(data);
  if (i < 0) return;
  const row = rowSize > 0 ? Math.floor(i / rowSize) : 0;
  throw new SteerlabError("bad_input", `the forward produced ${data[i]} in the ${what}`, {
    field: what,
    got: `${data[i]} at row ${row}, index ${rowSize > 0 ? i % rowSize : i}`,
    hint:
      "a steering coefficient or vector so large that the residual stream overflows float32, a hook that wrote " +
      "NaN/Inf, or non-finite weights; pass allowNonFinite (--allow-non-finite) to get the raw output",
  });
}
