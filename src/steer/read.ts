/**
 * Reading activations for extraction: where in each string to read (the read position) and hook bindings that
 * copy one row per string out of a forward pass, at any set of layers of one site. Engine-independent: the
 * activation collector runs these hooks on batches of tokenised strings (one uncached forward per batch, with
 * ForwardOptions.stopAfterLayer = reader.maxLayer and logits "none") and feeds the rows to extract() or to
 * PairMoments.
 *
 * Read positions, per row of a left-padded batch (positions from HookContext.positions; a row's length is
 * its largest position + 1 in the call):
 *   last            the last real token
 *   index:-k        the k-th token from the end (index:-1 = last)
 *   at              an absolute position per row given by the caller (e.g. the answer-letter token)
 *   mean-suffix:k   the mean over the last k tokens
 *   mean            the mean over all real tokens
 */
import { SteerlabError } from "../errors.js";
import type { HookBinding, HookContext } from "../model/engine.js";
import type { Site } from "../model/hooks.js";
import type { RowValue } from "./apply.js";
import type { Rows } from "./linalg.js";

export type ReadPosition =
  | { kind: "last" }
  | { kind: "index"; fromEnd: number }
  | { kind: "at"; position: RowValue }
  | { kind: "mean-suffix"; k: number }
  | { kind: "mean" };

export function parseReadPosition(spec: string, at?: RowValue): ReadPosition {
  const s = spec.trim();
  if (s === "last") return { kind: "last" };
  if (s === "mean") return { kind: "mean" };
  if (s === "at") {
    if (at === undefined)
      throw new SteerlabError("bad_input", 'read position "at" needs the token positions');
    return { kind: "at", position: at };
  }
  let m = /^index:-(\d+)$/.exec(s);
  if (m && Number(m[1]) >= 1) return { kind: "index", fromEnd: Number(m[1]) };
  m = /^mean-suffix:(\d+)$/.exec(s);
  if (m && Number(m[1]) >= 1) return { kind: "mean-suffix", k: Number(m[1]) };
  throw new SteerlabError("bad_input", `bad read position "${spec}"`, {
    expected: "last | index:-K | at | mean-suffix:K | mean",
  });
}

/** The spec string stored in vector files. */
export function formatReadPosition(r: ReadPosition): string {
  switch (r.kind) {
    case "index":
      return `index:-${r.fromEnd}`;
    case "mean-suffix":
      return `mean-suffix:${r.k}`;
    default:
      return r.kind;
  }
}

/** Absolute positions [lo, hi] (inclusive) averaged for a row of length n. */
function span(r: ReadPosition, n: number, row: number): [number, number] {
  switch (r.kind) {
    case "last":
      return [n - 1, n - 1];
    case "index":
      return [n - r.fromEnd, n - r.fromEnd];
    case "at": {
      const p = typeof r.position === "number" ? r.position : r.position[row];
      if (p === undefined) throw new SteerlabError("bad_input", `no read position for batch row ${row}`);
      return [p, p];
    }
    case "mean-suffix":
      return [Math.max(0, n - r.k), n - 1];
    case "mean":
      return [0, n - 1];
  }
}

/** One row per batch row from one hook call: [B, D]. */
export function readRows(ctx: HookContext, r: ReadPosition, rowOffset = 0): Float32Array {
  const { hidden, batch, seq, dim, positions } = ctx;
  const out = new Float32Array(batch * dim);
  for (let b = 0; b < batch; b++) {
    let n = 0;
    for (let t = 0; t < seq; t++) n = Math.max(n, positions[b * seq + t]! + 1);
    const [lo, hi] = span(r, n, rowOffset + b);
    if (lo < 0 || hi >= n || lo > hi) {
      throw new SteerlabError(
        "bad_input",
        `read position ${formatReadPosition(r)} is outside row ${rowOffset + b}`,
        {
          expected: `positions within 0..${n - 1}`,
          got: `${lo}..${hi}`,
        },
      );
    }
    let count = 0;
    for (let t = 0; t < seq; t++) {
      const p = positions[b * seq + t]!;
      if (p < lo || p > hi) continue;
      const o = (b * seq + t) * dim; // hidden [B, T, D]
      for (let j = 0; j < dim; j++) out[b * dim + j]! += hidden[o + j]!;
      count++;
    }
    if (count !== hi - lo + 1) {
      throw new SteerlabError("bad_input", `row ${rowOffset + b} lacks positions ${lo}..${hi} in this call`, {
        hint: "read from one uncached forward over the whole strings",
      });
    }
    for (let j = 0; j < dim; j++) out[b * dim + j]! /= count;
  }
  return out;
}

export interface ActivationReader {
  /** Bindings for one forward call; rows from successive calls are appended in order. */
  hooks: HookBinding[];
  /** The deepest layer read: pass as stopAfterLayer. */
  maxLayer: number;
  /** Rows collected so far per layer, [N, D] each, and reset. */
  take(): Map<number, Rows>;
}

/** Hooks that copy the read-position row of every string at `layers` of `site`. */
export function activationReader(
  layers: readonly number[],
  site: Site,
  read: ReadPosition,
): ActivationReader {
  if (layers.length === 0) throw new SteerlabError("bad_input", "no layers to read");
  const chunks = new Map<number, Float32Array[]>(layers.map((l) => [l, []]));
  const seen = new Map<number, number>(layers.map((l) => [l, 0])); // rows read so far (for "at" offsets)
  let dim = 0;
  const hooks = [...new Set(layers)].map((layer) => ({
    point: { layer, site },
    fn: (ctx: HookContext) => {
      dim = ctx.dim;
      chunks.get(layer)!.push(readRows(ctx, read, seen.get(layer)!));
      seen.set(layer, seen.get(layer)! + ctx.batch);
    },
  }));
  return {
    hooks,
    maxLayer: Math.max(...layers),
    take() {
      const out = new Map<number, Rows>();
      for (const [l, cs] of chunks) {
        const n = cs.reduce((s, c) => s + c.length, 0) / Math.max(1, dim);
        const data = new Float32Array(n * dim);
        let o = 0;
        for (const c of cs) {
          data.set(c, o);
          o += c.length;
        }
        out.set(l, { data, n, dim });
        cs.length = 0;
        seen.set(l, 0);
      }
      return out;
    },
  };
}
