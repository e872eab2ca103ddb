/**
 * The reference engine's key/value store: per layer, the rotated keys and the values of every cached token, with
 * spare capacity, plus which slots hold real tokens (rewritten by each call from the driver's cache mask). The
 * driver (model/driver.ts) keeps how many slots are filled and each row's next position.
 */
import type { ModelConfig } from "../model/config.js";

export class ReferenceKV {
  /** Allocated slots per row. */
  capacity: number;
  /** Width of one cached key or value row: nKvHeads * headDim. */
  readonly kvDim: number;
  /** Per layer: keys after RoPE, [B, capacity, KV*hd]. */
  keys: Float32Array[];
  /** Per layer: values, [B, capacity, KV*hd]. */
  values: Float32Array[];
  /** 1 = real token, 0 = padding, [B, capacity]; valid for the slots a call reads. */
  valid: Uint8Array;

  constructor(
    readonly config: ModelConfig,
    readonly batch: number,
    capacity = 16,
  ) {
    this.capacity = capacity;
    this.kvDim = config.nKvHeads * config.headDim;
    const n = batch * capacity * this.kvDim;
    this.keys = Array.from({ length: config.nLayers }, () => new Float32Array(n));
    this.values = Array.from({ length: config.nLayers }, () => new Float32Array(n));
    this.valid = new Uint8Array(batch * capacity);
  }

  /** Make room for `need` slots per row, copying the first `keep` of each (capacity doubles). */
  reserve(keep: number, need: number): void {
    if (need <= this.capacity) return;
    let cap = this.capacity;
    while (cap < need) cap *= 2;
    const kv = this.kvDim;
    const grow = (old: Float32Array): Float32Array => {
      const out = new Float32Array(this.batch * cap * kv); // [B, cap, KV*hd]
      for (let b = 0; b < this.batch; b++) {
        out.set(old.subarray(b * this.capacity * kv, (b * this.capacity + keep) * kv), b * cap * kv);
      }
      return out;
    };
    this.keys = this.keys.map(grow);
    this.values = this.values.map(grow);
    this.valid = new Uint8Array(this.batch * cap); // [B, cap], rewritten by every call
    this.capacity = cap;
  }

  /** batch * n rows, row k * n + j a copy of row k's first `keep` slots, with room for `room` more. */
  fork(n: number, keep: number, room: number): ReferenceKV {
    const kv = this.kvDim;
    const out = new ReferenceKV(this.config, this.batch * n, Math.max(1, keep + room));
    const cap = out.capacity;
    for (let b = 0; b < this.batch; b++) {
      for (let j = 0; j < n; j++) {
        const d = b * n + j;
        for (let l = 0; l < this.keys.length; l++) {
          const from = b * this.capacity * kv;
          out.keys[l]!.set(this.keys[l]!.subarray(from, from + keep * kv), d * cap * kv);
          out.values[l]!.set(this.values[l]!.subarray(from, from + keep * kv), d * cap * kv);
        }
      }
    }
    return out;
  }
}
