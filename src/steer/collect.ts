/**
 * Collecting activations over many sequences: left-padded batches through any Engine (sorted by length so
 * batches carry little padding), one uncached forward per batch that stops after the deepest layer read, and
 * the read-position rows (steer/read.ts) handed out per batch. Streaming (onBatch) lets callers accumulate
 * moments instead of holding N x D per layer; collectActivations() keeps everything.
 */
import { SteerlabError } from "../errors.js";
import type { Engine, HookBinding } from "../model/engine.js";
import { type HookPoint, hookName } from "../model/hooks.js";
import { type ReadPosition, readRows } from "./read.js";

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

/** The read position for the rows `idx` of this batch ("at" positions follow their sequences). */
function readFor(r: ReadPosition, idx: readonly number[]): ReadPosition {
  if (r.kind !== "at" || typeof r.position === "number") return r;
  const pos = r.position;
  return { kind: "at", position: idx.map((i) => pos[i]!) };
}

/** Run `seqs` through the engine in batches and hand each batch's activations to onBatch. */
export async function streamActivations(
  engine: Engine,
  seqs: readonly (readonly number[])[],
  opts: CollectOptions,
  onBatch: (b: ActivationBatch) => void,
): Promise<void> {
  const bs = Math.max(1, opts.batchSize ?? 8);
  if (opts.points.length === 0) throw new SteerlabError("bad_input", "no hook points to read");
  seqs.forEach((s, i) => {
    if (s.length === 0) throw new SteerlabError("bad_input", `sequence ${i} is empty`);
  });
  const order = seqs.map((_, i) => i).sort((x, y) => seqs[x]!.length - seqs[y]!.length);
  const maxLayer = Math.max(...opts.points.map((p) => p.layer));
  for (let start = 0; start < order.length; start += bs) {
    const idx = order.slice(start, start + bs);
    const T = Math.max(...idx.map((i) => seqs[i]!.length));
    const pad = (i: number) => T - seqs[i]!.length;
    const ids = idx.map((i) => [...new Array<number>(pad(i)).fill(0), ...seqs[i]!]);
    const mask = idx.map((i) => [
      ...new Array<number>(pad(i)).fill(0),
      ...new Array<number>(seqs[i]!.length).fill(1),
    ]);
    const read = readFor(opts.read, idx);
    const hooks: HookBinding[] = opts.points.map((point) => ({
      point,
      fn: (ctx) => onBatch({ point, indices: idx, rows: readRows(ctx, read) }),
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
