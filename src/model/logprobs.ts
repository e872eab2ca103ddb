/**
 * Log-probabilities from any Engine: the full next-token distribution at chosen positions of a sequence, and
 * teacher-forced scores of candidate continuations of a prompt (e.g. answer letters, refusal vs compliance).
 * Rows are run in left-padded batches of `batchSize`.
 */
import { SteerlabError } from "../errors.js";
import type { Engine, ForwardResult, HookBinding } from "./engine.js";
import { logSoftmax } from "./sampling.js";

export interface LogprobOptions {
  /** Hooks applied to every forward of this call (e.g. a steering vector). */
  hooks?: readonly HookBinding[];
  /** Rows per forward (default 8). */
  batchSize?: number;
}

export interface NextTokenOptions extends LogprobOptions {
  /**
   * Token indices t of the sequence whose next-token distribution (after tokens 0..t) is wanted; negative counts
   * from the end. Default "last".
   */
  positions?: readonly number[] | "all" | "last";
  /** How many of the most likely tokens to list (default 10). */
  top?: number;
}

export interface NextTokenDistribution {
  /** The token index t (resolved, non-negative): this predicts token t+1. */
  position: number;
  /** log p(token | tokens 0..t) for every vocabulary id, [V]. */
  logprobs: Float64Array;
  /** The `top` most likely ids, most likely first. */
  top: { id: number; logprob: number }[];
}

export interface ContinuationScore {
  /** log p(continuation | prompt), summed over its tokens. */
  sum: number;
  /** sum / number of tokens. */
  mean: number;
  /** log p of each continuation token given everything before it. */
  tokens: number[];
}

/** Run rows (each its own length) as one left-padded batch. Logits [B, Tmax, V] or [B, 1, V]. */
async function forwardPadded(
  engine: Engine,
  rows: readonly (readonly number[])[],
  logits: "all" | "last",
  hooks: readonly HookBinding[] | undefined,
): Promise<{ out: ForwardResult; T: number }> {
  const T = Math.max(...rows.map((r) => r.length));
  const ids = rows.map((r) => [...Array<number>(T - r.length).fill(0), ...r]); // [B, T]
  const mask = rows.map((r) => [...Array<number>(T - r.length).fill(0), ...Array<number>(r.length).fill(1)]);
  const out = await engine.forward({ ids, mask }, hooks ? { logits, hooks } : { logits });
  return { out, T };
}

function checkRows(rows: readonly (readonly number[])[], field: string): void {
  rows.forEach((r, i) => {
    if (r.length === 0)
      throw new SteerlabError("bad_input", "empty token sequence", { field: `${field}[${i}]` });
  });
}

function batchSizeOf(o: LogprobOptions): number {
  const n = o.batchSize ?? 8;
  if (!Number.isInteger(n) || n < 1) {
    throw new SteerlabError("bad_input", "batchSize must be a positive integer", {
      field: "batchSize",
      got: String(n),
    });
  }
  return n;
}

/** The k most likely ids of a log-distribution, most likely first (ties: lower id first). */
export function topOf(lp: Float64Array, k: number): { id: number; logprob: number }[] {
  const best: { id: number; logprob: number }[] = [];
  for (let id = 0; id < lp.length && k > 0; id++) {
    const v = lp[id]!;
    if (best.length === k && v <= best[k - 1]!.logprob) continue;
    let j = best.length === k ? k - 1 : best.length;
    while (j > 0 && best[j - 1]!.logprob < v) j--;
    best.splice(j, 0, { id, logprob: v });
    if (best.length > k) best.pop();
  }
  return best;
}

function resolvePositions(p: NextTokenOptions["positions"], n: number, row: number): number[] {
  if (p === undefined || p === "last") return [n - 1];
  if (p === "all") return Array.from({ length: n }, (_, i) => i);
  return p.map((t) => {
    const r = t < 0 ? n + t : t;
    if (!Number.isInteger(t) || r < 0 || r >= n) {
      throw new SteerlabError("bad_input", "position out of range", {
        field: `positions (row ${row})`,
        expected: `an integer in [-${n}, ${n - 1}]`,
        got: String(t),
      });
    }
    return r;
  });
}

/** Next-token log-distributions of one sequence at the chosen positions. */
export function nextTokenLogprobs(
  engine: Engine,
  ids: readonly number[],
  opts?: NextTokenOptions,
): Promise<NextTokenDistribution[]>;
/** The same for several sequences (batched); one list per sequence. */
export function nextTokenLogprobs(
  engine: Engine,
  ids: readonly (readonly number[])[],
  opts?: NextTokenOptions,
): Promise<NextTokenDistribution[][]>;
export async function nextTokenLogprobs(
  engine: Engine,
  ids: readonly number[] | readonly (readonly number[])[],
  opts: NextTokenOptions = {},
): Promise<NextTokenDistribution[] | NextTokenDistribution[][]> {
  const single = ids.length === 0 || typeof ids[0] === "number";
  const rows = (single ? [ids] : ids) as readonly (readonly number[])[];
  checkRows(rows, "ids");
  const top = opts.top ?? 10;
  const bs = batchSizeOf(opts);
  const wanted = rows.map((r, i) => resolvePositions(opts.positions, r.length, i));
  const onlyLast = wanted.every((w, i) => w.length === 1 && w[0] === rows[i]!.length - 1);
  const results: NextTokenDistribution[][] = [];
  for (let s = 0; s < rows.length; s += bs) {
    const chunk = rows.slice(s, s + bs);
    const { out, T } = await forwardPadded(engine, chunk, onlyLast ? "last" : "all", opts.hooks);
    const V = out.vocab;
    chunk.forEach((r, b) => {
      const pad = T - r.length;
      results.push(
        wanted[s + b]!.map((t) => {
          const slot = onlyLast ? 0 : pad + t;
          const lp = logSoftmax(out.logits, (b * out.seq + slot) * V, V);
          return { position: t, logprobs: lp, top: topOf(lp, top) };
        }),
      );
    });
  }
  return single ? results[0]! : results;
}

/**
 * Teacher-forced log-probabilities of each continuation after the prompt: sum and mean over its tokens.
 * Token j of a continuation is scored by the distribution after prompt + continuation[0..j).
 */
export async function scoreContinuations(
  engine: Engine,
  prompt: readonly number[],
  continuations: readonly (readonly number[])[],
  opts: LogprobOptions = {},
): Promise<ContinuationScore[]> {
  checkRows([prompt], "prompt");
  checkRows(continuations, "continuations");
  const bs = batchSizeOf(opts);
  const P = prompt.length;
  const scores: ContinuationScore[] = [];
  for (let s = 0; s < continuations.length; s += bs) {
    const chunk = continuations.slice(s, s + bs);
    // The last continuation token is never an input whose prediction is needed.
    const rows = chunk.map((c) => [...prompt, ...c.slice(0, -1)]);
    const { out, T } = await forwardPadded(engine, rows, "all", opts.hooks);
    const V = out.vocab;
    chunk.forEach((c, b) => {
      const pad = T - rows[b]!.length;
      const tokens = c.map((id, j) => {
        const slot = pad + P - 1 + j;
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new SteerlabError("bad_input", "token id out of range", {
            field: `continuations[${s + b}][${j}]`,
            expected: `an integer in [0, ${V})`,
            got: String(id),
          });
        }
        return logSoftmax(out.logits, (b * out.seq + slot) * V, V)[id]!;
      });
      const sum = tokens.reduce((a, x) => a + x, 0);
      scores.push({ sum, mean: sum / tokens.length, tokens });
    });
  }
  return scores;
}
