/**
 * The ONNX Runtime engine's KV cache: per block, K^T and V in JS buffers with spare capacity, fed to the graphs
 * as they are (ORT reads input buffers in place) and appended to in place, so a decode step never copies the
 * whole cache. Also the padding mask seen so far and each row's next position, so that positions and masks
 * continue across cached calls.
 */
import * as ort from "onnxruntime-common";
import type { KVCache } from "../model/engine.js";

export class OrtKVCache implements KVCache {
  /** Per block: K^T [B, KV, hd, C] and V [B, KV, C, hd]; slots >= length hold nothing (the mask hides them). */
  k: Float32Array[];
  v: Float32Array[];
  /** Slots per row (C). */
  capacity = 0;
  /** [B][length] 1 = real token, 0 = padding, for every cached token. */
  mask: Uint8Array[];
  /** [B] real tokens seen so far per row = the next real token's position. */
  nextPos: Int32Array;
  /** Tokens held per row, padding included. */
  length = 0;

  constructor(
    readonly owner: object,
    readonly batch: number,
    readonly nLayers: number,
    readonly nKvHeads: number,
    readonly headDim: number,
  ) {
    this.k = Array.from({ length: nLayers }, () => new Float32Array(0));
    this.v = Array.from({ length: nLayers }, () => new Float32Array(0));
    this.mask = Array.from({ length: batch }, () => new Uint8Array(0));
    this.nextPos = new Int32Array(batch);
  }

  /** Make room for n more tokens: capacity at least doubles, so appends cost O(1) amortized per token. */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.capacity) return;
    const C = Math.max(need, 2 * this.capacity, 16);
    const { batch: B, nKvHeads: KV, headDim: hd, length: P } = this;
    for (let l = 0; l < this.nLayers; l++) {
      const k = new Float32Array(B * KV * hd * C); // [B, KV, hd, C]
      const v = new Float32Array(B * KV * C * hd); // [B, KV, C, hd]
      for (let bh = 0; bh < B * KV; bh++) {
        for (let d = 0; d < hd; d++) {
          const from = (bh * hd + d) * this.capacity;
          k.set(this.k[l]!.subarray(from, from + P), (bh * hd + d) * C);
        }
        v.set(this.v[l]!.subarray(bh * this.capacity * hd, (bh * this.capacity + P) * hd), bh * C * hd);
      }
      this.k[l] = k;
      this.v[l] = v;
    }
    this.capacity = C;
  }

  /** Block l's cache as graph inputs past_k [B, KV, hd, C] and past_v [B, KV, C, hd] (no copy). */
  tensors(l: number): { k: ort.Tensor; v: ort.Tensor } {
    const { batch: B, nKvHeads: KV, headDim: hd, capacity: C } = this;
    return {
      k: new ort.Tensor("float32", this.k[l]!, [B, KV, hd, C]),
      v: new ort.Tensor("float32", this.v[l]!, [B, KV, C, hd]),
    };
  }

  /** Store block l's new K^T [B, KV, hd, T] and V [B, KV, T, hd] at slots [length, length + T). */
  write(l: number, kNew: Float32Array, vNew: Float32Array, T: number): void {
    const { batch: B, nKvHeads: KV, headDim: hd, capacity: C, length: P } = this;
    const k = this.k[l]!;
    const v = this.v[l]!;
    for (let bh = 0; bh < B * KV; bh++) {
      for (let d = 0; d < hd; d++) {
        k.set(kNew.subarray((bh * hd + d) * T, (bh * hd + d + 1) * T), (bh * hd + d) * C + P);
      }
      v.set(vNew.subarray(bh * T * hd, (bh + 1) * T * hd), (bh * C + P) * hd);
    }
  }

  /**
   * A cache of batch * rowsPerSource rows, row k * rowsPerSource + j a copy of row k, with capacity for `room`
   * more tokens per row (so the next call appends without growing). This cache is not touched.
   */
  fork(rowsPerSource: number, room = 0): OrtKVCache {
    const n = rowsPerSource;
    const { nKvHeads: KV, headDim: hd, length: P, capacity: C0 } = this;
    const out = new OrtKVCache(this.owner, this.batch * n, this.nLayers, KV, hd);
    const C = P + room;
    for (let l = 0; l < this.nLayers; l++) {
      const k = new Float32Array(out.batch * KV * hd * C); // [B * n, KV, hd, C]
      const v = new Float32Array(out.batch * KV * C * hd); // [B * n, KV, C, hd]
      for (let b = 0; b < this.batch; b++) {
        for (let j = 0; j < n; j++) {
          const d = b * n + j;
          for (let h = 0; h < KV; h++) {
            for (let e = 0; e < hd; e++) {
              const from = ((b * KV + h) * hd + e) * C0;
              k.set(this.k[l]!.subarray(from, from + P), ((d * KV + h) * hd + e) * C);
            }
            const from = (b * KV + h) * C0 * hd;
            v.set(this.v[l]!.subarray(from, from + P * hd), (d * KV + h) * C * hd);
          }
        }
      }
      out.k[l] = k;
      out.v[l] = v;
    }
    out.capacity = C;
    out.length = P;
    out.mask = Array.from({ length: out.batch }, (_, d) => this.mask[Math.floor(d / n)]!.slice());
    out.nextPos = Int32Array.from({ length: out.batch }, (_, d) => this.nextPos[Math.floor(d / n)]!);
    return out;
  }
}
