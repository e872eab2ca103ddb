/**
 * Reading activations: run many token sequences through any Engine in left-padded batches and read the hidden
 * state at chosen hook points and read positions. Streams per batch (onBatch) so callers can accumulate moments
 * instead of holding N x D per layer; collectActivations() is the convenience that keeps everything.
 */
import { SteerlabError } from "../errors.js";
import type { Engine, HookBinding } from "../model/engine.js";
import { type HookPoint, hookName } from "../model/hooks.js";

/** Where in each sequence to read. Indices count real tokens; negative ones count from the end (-1 = last). */
export type ReadPosition =
  | { kind: "last" }
  | { kind: "index"; index: number | readonly number[] }
  | { kind: "mean-suffix"; n: number }
  | { kind: "mean-all" };

export function parseReadPosition(s: string): ReadPosition {
  if (s === "last") return { kind: "last" };
  if (s === "mean" || s === "mean-all") return { kind: "mean-all" };
  let m = /^mean-suffix:(\d+)$/.exec(s);
  if (m) return { kind: "mean-suffix", n: Number(m[1]) };
  m = /^(?:index:)?(-?\d+)$/.exec(s);
  if (m) return { kind: "index", index: Number(m[1]) };
  throw new SteerlabError("bad_input", `bad read position "${s}"`, {
    field: "read position",
    expected: "last | index:<i> (negative from the end) | mean-suffix:<n> | mean-all",
  });
}

export function readPositionName(r: ReadPosition): string {
  switch (r.kind) {
    case "last":
      return "last";
    case "mean-all":
      return "mean-all";
    case "mean-suffix":
      return `mean-suffix:${r.n}`;
    case "index":
      return typeof r.index === "number" ? `index:${r.index}` : "index:per-sequence";
  }
}

/** The [start, end) range of real-token offsets (0..len) to average for sequence i of length len. */
function readRange(r: ReadPosition, i: number, len: number): [number, number] {
  let a: number;
  let b: number;
  switch (r.kind) {
    case "last":
      [a, b] = [len - 1, len];
      break;
    case "mean-all":
      [a, b] = [0, len];
      break;
    case "mean-suffix":
      [a, b] = [Math.max(0, len - r.n), len];
      break;
    case "index": {
      const raw = typeof r.index === "number" ? r.index : r.index[i];
      if (raw === undefined) throw new SteerlabError("bad_input", `no read index for sequence ${i}`);
      const k = raw < 0 ? len + raw : raw;
      [a, b] = [k, k + 1];
    }
  }
  if (a < 0 || b > len || a >= b) {
    throw new SteerlabError("bad_input", `read position ${readPositionName(r)} is outside sequence ${i}`, {
      got: `length ${len}`,
    });
  }
  return [a, b];
}

export interface ActivationBatch {
  point: HookPoint;
  /** Indices (into the input list) of the rows in `rows`. */
  indices: number[];
  /** [indices.length, D] */
  rows: Float32Array;
}

export interface CollectOptions {
  points: readonly HookPoint[];
  read: ReadPosition;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Run `seqs` through the engine in batches and hand each batch's activations to onBatch. */
export async function streamActivations(
  engine: Engine,
  seqs: readonly (readonly number[])[],
  opts: CollectOptions,
  onBatch: (b: ActivationBatch) => void,
): Promise<void> {
  const D = engine.config.hiddenSize;
  const bs = Math.max(1, opts.batchSize ?? 8);
  if (opts.points.length === 0) throw new SteerlabError("bad_input", "no hook points to read");
  seqs.forEach((s, i) => {
    if (s.length === 0) throw new SteerlabError("bad_input", `sequence ${i} is empty`);
  });
  // Sort by length so batches carry little padding; results are reported with original indices.
  const order = seqs.map((_, i) => i).sort((x, y) => seqs[x]!.length - seqs[y]!.length);
  const maxLayer = Math.max(...opts.points.map((p) => p.layer));
  for (let start = 0; start < order.length; start += bs) {
    const idx = order.slice(start, start + bs);
    const T = Math.max(...idx.map((i) => seqs[i]!.length));
    const ids = idx.map((i) => [...new Array<number>(T - seqs[i]!.length).fill(0), ...seqs[i]!]);
    const mask = idx.map((i) => [
      ...new Array<number>(T - seqs[i]!.length).fill(0),
      ...new Array<number>(seqs[i]!.length).fill(1),
    ]);
    const hooks: HookBinding[] = opts.points.map((point) => ({
      point,
      fn: (ctx) => {
        const rows = new Float32Array(idx.length * D);
        idx.forEach((orig, b) => {
          const len = seqs[orig]!.length;
          const [a, e] = readRange(opts.read, orig, len);
          const pad = T - len;
          for (let t = pad + a; t < pad + e; t++) {
            const off = (b * ctx.seq + t) * D;
            for (let d = 0; d < D; d++) rows[b * D + d]! += ctx.hidden[off + d]!;
          }
          const inv = 1 / (e - a);
          for (let d = 0; d < D; d++) rows[b * D + d]! *= inv;
        });
        onBatch({ point, indices: idx, rows });
      },
    }));
    await engine.forward({ ids, mask }, { hooks, logits: "none", stopAfterLayer: maxLayer });
    opts.onProgress?.(Math.min(start + bs, order.length), order.length);
  }
}

/** Collect activations for every point: hookName → [N, D] in input order. */
export async function collectActivations(
  engine: Engine,
  seqs: readonly (readonly number[])[],
  opts: CollectOptions,
): Promise<Map<string, Float32Array>> {
  const D = engine.config.hiddenSize;
  const out = new Map<string, Float32Array>();
  for (const p of opts.points) out.set(hookName(p.layer, p.site), new Float32Array(seqs.length * D));
  await streamActivations(engine, seqs, opts, (b) => {
    const dst = out.get(hookName(b.point.layer, b.point.site))!;
    b.indices.forEach((orig, r) => {
      dst.set(b.rows.subarray(r * D, (r + 1) * D), orig * D);
    });
  });
  return out;
}
