/**
 * The ONNX Runtime backend's key/value store: per block, K^T and V in JS buffers with spare capacity, fed to the
 * graphs as they are (ORT reads input buffers in place) and appended to in place, so a decode step never copies
 * the whole cache. The driver (model/driver.ts) keeps how many slots are filled, the padding mask and each row's
 * next position.
 */
import * as ort from "onnxruntime-common";

export class OrtKV {
  /** Per block: K^T [B, KV, hd, C] and V [B, KV, C, hd]; slots past the driver's length hold nothing (masked). */
  k: Float32Array[];
  v: Float32Array[];
  /** Slots per row (C). */
  capacity = 0;

  constructor(
    readonly batch: number,
    readonly nLayers: number,
    readonly nKvHeads: number,
    readonly headDim: number,
  ) {
    this.k = Array.from({ length: nLayers }, () => new Float32Array(0));
    this.v = Array.from({ length: nLayers }, () => new Float32Array(0));
  }

  /** Make room for `need` slots, keeping the first `keep`: capacity at least doubles (O(1) amortized appends). */
  reserve(keep: number, need: number): void {
    if (need <= this.capacity) return;
    const C = Math.max(need, 2 * this.capacity, 16);
    const { batch: B, nKvHeads: KV, headDim: hd } = this;
    for (let l = 0; l < this.nLayers; l++) {
      const k = new Float32Array(B * KV * hd * C); // [B, KV, hd, C]
      const v = new Float32Array(B * KV * C * hd); // [B, KV, C, hd]
      for (let bh = 0; bh < B * KV; bh++) {
        for (let d = 0; d < hd; d++) {
          const from = (bh * hd + d) * this.capacity;
          k.set(this.k[l]!.subarray(from, from + keep), (bh * hd + d) * C);
        }
        v.set(this.v[l]!.subarray(bh * this.capacity * hd, (bh * this.capacity + keep) * hd), bh * C * hd);
      }
      this.k[l] = k;
      this.v[l] = v;
    }
    this.capacity = C;
  }

  /** Block l's store as graph inputs past_k [B, KV, hd, C] and past_v [B, KV, C, hd] (no copy). */
  tensors(l: number): { k: ort.Tensor; v: ort.Tensor } {
    const { batch: B, nKvHeads: KV, headDim: hd, capacity: C } = this;
    return {
      k: new ort.Tensor("float32", this.k[l]!, [B, KV, hd, C]),
      v: new ort.Tensor("float32", this.v[l]!, [B, KV, C, hd]),
    };
  }

  /** Store block l's new K^T [B, KV, hd, T] and V [B, KV, T, hd] at slots [at, at + T). */
  write(l: number, kNew: Float32Array, vNew: Float32Array, T: number, at: number): void {
    const { batch: B, nKvHeads: KV, headDim: hd, capacity: C } = this;
    const k = this.k[l]!;
    const v = this.v[l]!;
    for (let bh = 0; bh < B * KV; bh++) {
      for (let d = 0; d < hd; d++) {
        k.set(kNew.subarray((bh * hd + d) * T, (bh * hd + d + 1) * T), (bh * hd + d) * C + at);
      }
      v.set(vNew.subarray(bh * T * hd, (bh + 1) * T * hd), (bh * C + at) * hd);
    }
  }

  /** batch * n rows, row k * n + j a copy of row k's first `keep` slots, with room for `room` more. */
  fork(n: number, keep: number, room: number): OrtKV {
    const { nKvHeads: KV, headDim: hd, capacity: C0 } = this;
    const out = new OrtKV(this.batch * n, this.nLayers, KV, hd);
    const C = keep + room;
    for (let l = 0; l < this.nLayers; l++) {
      const k = new Float32Array(out.batch * KV * hd * C); // [B * n, KV, hd, C]
      const v = new Float32Array(out.batch * KV * C * hd); // [B * n, KV, C, hd]
      for (let b = 0; b < this.batch; b++) {
        for (let j = 0; j < n; j++) {
          const d = b * n + j;
          for (let h = 0; h < KV; h++) {
            for (let e = 0; e < hd; e++) {
              const from = ((b * KV + h) * hd + e) * C0;
              k.set(this.k[l]!.subarray(from, from + keep), ((d * KV + h) * hd + e) * C);
            }
            const from = (b * KV + h) * C0 * hd;
            v.set(this.v[l]!.subarray(from, from + keep * hd), (d * KV + h) * C * hd);
          }
        }
      }
      out.k[l] = k;
      out.v[l] = v;
    }
    out.capacity = C;
    return out;
  }
}
