/**
 * The ggml backend's key/value store: per block, persistent ggml tensors with spare capacity C, laid out as
 * llama.cpp's non-flash attention reads them:
 *   K [hd, C, KV, B]   each (head, row) a [C, hd] matrix: K @ q needs no transpose
 *   V [C, hd, KV, B]   transposed: each (head, row) a [hd, C] matrix, so P @ V reads rows of slots
 * in F16 (default, llama.cpp's --cache-type-k/-v f16) or F32 (exact against the reference). Growing and forking
 * copy slots with one ggml copy graph; the graphs (ggml-graphs.ts) write a call's keys and values into spare slots.
 * The driver (model/driver.ts) keeps how many slots are filled, the padding mask and each row's next position.
 */
import { GGML_TYPE } from "../../io/gguf-quant.js";
import type { KVStore } from "../../model/backend.js";
import type { GgmlBackend, GgmlGraph, GgmlTensor } from "./addon.js";

export type CacheType = "f16" | "f32";
export const CACHE_TYPES: readonly CacheType[] = ["f16", "f32"];

export interface KVShape {
  nLayers: number;
  nKvHeads: number;
  headDim: number;
}

/** Frees a store's tensors when the store is collected (caches have no dispose in the Engine contract). */
const collected = new FinalizationRegistry<GgmlTensor[]>((ts) => {
  for (const t of ts) {
    try {
      t.free();
    } catch {
      // the backend was disposed first: it freed them
    }
  }
});

export class GgmlKV implements KVStore<GgmlKV> {
  /** Per block: K [hd, C, KV, B] and V [C, hd, KV, B]. */
  k: GgmlTensor[] = [];
  v: GgmlTensor[] = [];
  /** Slots per row (C). */
  capacity = 0;
  private token: object = {};

  constructor(
    private readonly be: GgmlBackend,
    readonly batch: number,
    readonly shape: KVShape,
    readonly cacheType: CacheType,
  ) {}

  /** Bytes per value. */
  get elementBytes(): number {
    return this.cacheType === "f16" ? 2 : 4;
  }

  get ggmlType(): number {
    return this.cacheType === "f16" ? GGML_TYPE.F16 : GGML_TYPE.F32;
  }

  /** Bytes this store holds. */
  get bytes(): number {
    const { nLayers: L, nKvHeads: KV, headDim: hd } = this.shape;
    return 2 * L * KV * hd * this.capacity * this.batch * this.elementBytes;
  }

  /** Make room for `need` slots, keeping the first `keep`: capacity at least doubles (O(1) amortized appends). */
  reserve(keep: number, need: number): void {
    if (need <= this.capacity) return;
    const C = Math.max(need, 2 * this.capacity, 16);
    const next = new GgmlKV(this.be, this.batch, this.shape, this.cacheType);
    next.allocate(C);
    if (keep > 0) this.copyRows(next, keep, [[0, 0, this.batch]]);
    this.release();
    this.k = next.k;
    this.v = next.v;
    this.capacity = C;
    next.k = [];
    next.v = [];
    next.release();
    this.track();
  }

  /** batch * n rows, row b * n + j a copy of row b's first `keep` slots, with room for `room` more. */
  fork(n: number, keep: number, room: number): GgmlKV {
    const out = new GgmlKV(this.be, this.batch * n, this.shape, this.cacheType);
    out.allocate(Math.max(1, keep + room));
    out.track();
    if (keep > 0) {
      const runs: [number, number, number][] = [];
      for (let b = 0; b < this.batch; b++) for (let j = 0; j < n; j++) runs.push([b, b * n + j, 1]);
      this.copyRows(out, keep, runs);
    }
    return out;
  }

  /** Free the tensors now (the store is unusable afterwards). */
  release(): void {
    collected.unregister(this.token);
    for (const t of [...this.k, ...this.v]) t.free();
    this.k = [];
    this.v = [];
    this.capacity = 0;
  }

  private allocate(C: number): void {
    const { nLayers: L, nKvHeads: KV, headDim: hd } = this.shape;
    const B = this.batch;
    for (let l = 0; l < L; l++) {
      this.k.push(this.be.tensor(this.ggmlType, [hd, C, KV, B]));
      this.v.push(this.be.tensor(this.ggmlType, [C, hd, KV, B]));
    }
    this.capacity = C;
  }

  private track(): void {
    collected.unregister(this.token);
    this.token = {};
    collected.register(this, [...this.k, ...this.v], this.token);
  }

  /**
   * Copy the first `keep` slots of rows into `dst`: each run [from, to, count] copies rows from..from+count-1
   * of this store to rows to..to+count-1 of dst. One graph for every block.
   */
  private copyRows(dst: GgmlKV, keep: number, runs: readonly [number, number, number][]): void {
    const { nLayers: L, nKvHeads: KV, headDim: hd } = this.shape;
    const es = this.elementBytes;
    const g = this.be.graph();
    try {
      for (let l = 0; l < L; l++) {
        for (const [from, to, n] of runs) {
          g.expand(
            g.op("cpy", [
              kView(g, g.ref(this.k[l]!), hd, keep, KV, n, this.capacity, es, from),
              kView(g, g.ref(dst.k[l]!), hd, keep, KV, n, dst.capacity, es, to),
            ]),
          );
          g.expand(
            g.op("cpy", [
              vView(g, g.ref(this.v[l]!), hd, keep, KV, n, this.capacity, es, from),
              vView(g, g.ref(dst.v[l]!), hd, keep, KV, n, dst.capacity, es, to),
            ]),
          );
        }
      }
      g.compute();
    } finally {
      g.free();
    }
  }
}

/** Slots [at, at + n) of K [hd, C, KV, B], rows [row, row + rows): a view [hd, n, KV, rows]. */
export function kView(
  g: GgmlGraph,
  k: number,
  hd: number,
  n: number,
  KV: number,
  rows: number,
  C: number,
  es: number,
  row = 0,
  at = 0,
): number {
  const nb1 = hd * es;
  const nb2 = nb1 * C;
  const nb3 = nb2 * KV;
  return g.op("view", [k], [hd, n, KV, rows, nb1, nb2, nb3, row * nb3 + at * nb1]);
}

/** Slots [at, at + n) of V [C, hd, KV, B], rows [row, row + rows): a view [n, hd, KV, rows]. */
export function vView(
  g: GgmlGraph,
  v: number,
  hd: number,
  n: number,
  KV: number,
  rows: number,
  C: number,
  es: number,
  row = 0,
  at = 0,
): number {
  const nb1 = C * es;
  const nb2 = nb1 * hd;
  const nb3 = nb2 * KV;
  return g.op("view", [v], [n, hd, KV, rows, nb1, nb2, nb3, row * nb3 + at * es]);
}
