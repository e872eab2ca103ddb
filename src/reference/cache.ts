/**
 * The reference engine's KV cache: per layer, the rotated keys and the values of every token seen so far, plus
 * which cached slots are real tokens (left padding stays in the cache, masked out) and how many real tokens each
 * row has seen (the next token's position).
 */
import { SteerlabError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { KVCache } from "../model/engine.js";

export class ReferenceCache implements KVCache {
  readonly batch: number;
  /** Tokens held per row, padding included. */
  length = 0;
  /** Allocated slots per row. */
  capacity: number;
  /** Width of one cached key or value row: nKvHeads * headDim. */
  readonly kvDim: number;
  /** Per layer: keys after RoPE, [B, capacity, KV*hd]. */
  keys: Float32Array[];
  /** Per layer: values, [B, capacity, KV*hd]. */
  values: Float32Array[];
  /** 1 = real token, 0 = padding, [B, capacity]. */
  valid: Uint8Array;
  /** Real tokens seen per row, [B]: the position of the row's next real token. */
  readonly seen: Int32Array;
  /** The config this cache was made for (checked on use). */
  readonly config: ModelConfig;

  constructor(config: ModelConfig, batch: number, capacity = 16) {
    if (!Number.isInteger(batch) || batch <= 0) {
      throw new SteerlabError("bad_input", "cache batch size must be a positive integer", {
        got: String(batch),
      });
    }
    this.config = config;
    this.batch = batch;
    this.capacity = capacity;
    this.kvDim = config.nKvHeads * config.headDim;
    const n = batch * capacity * this.kvDim;
    this.keys = Array.from({ length: config.nLayers }, () => new Float32Array(n));
    this.values = Array.from({ length: config.nLayers }, () => new Float32Array(n));
    this.valid = new Uint8Array(batch * capacity);
    this.seen = new Int32Array(batch);
  }

  /** Make room for `extra` more tokens per row, copying what is held (capacity doubles). */
  reserve(extra: number): void {
    const need = this.length + extra;
    if (need <= this.capacity) return;
    let cap = this.capacity;
    while (cap < need) cap *= 2;
    const kv = this.kvDim;
    const grow = (old: Float32Array): Float32Array => {
      const out = new Float32Array(this.batch * cap * kv); // [B, cap, KV*hd]
      for (let b = 0; b < this.batch; b++) {
        out.set(old.subarray(b * this.capacity * kv, (b * this.capacity + this.length) * kv), b * cap * kv);
      }
      return out;
    };
    this.keys = this.keys.map(grow);
    this.values = this.values.map(grow);
    const valid = new Uint8Array(this.batch * cap); // [B, cap]
    for (let b = 0; b < this.batch; b++) {
      valid.set(this.valid.subarray(b * this.capacity, b * this.capacity + this.length), b * cap);
    }
    this.valid = valid;
    this.capacity = cap;
  }

  /**
   * A cache of batch * rowsPerSource rows, row k * rowsPerSource + j a copy of row k, with room for `room`
   * more tokens per row. This cache is not touched.
   */
  fork(rowsPerSource: number, room = 0): ReferenceCache {
    const n = rowsPerSource;
    const P = this.length;
    const kv = this.kvDim;
    const out = new ReferenceCache(this.config, this.batch * n, Math.max(1, P + room));
    const cap = out.capacity;
    for (let b = 0; b < this.batch; b++) {
      for (let j = 0; j < n; j++) {
        const d = b * n + j;
        for (let l = 0; l < this.keys.length; l++) {
          out.keys[l]!.set(
            this.keys[l]!.subarray(b * this.capacity * kv, (b * this.capacity + P) * kv),
            d * cap * kv,
          );
          out.values[l]!.set(
            this.values[l]!.subarray(b * this.capacity * kv, (b * this.capacity + P) * kv),
            d * cap * kv,
          );
        }
        out.valid.set(this.valid.subarray(b * this.capacity, b * this.capacity + P), d * cap);
        out.seen[d] = this.seen[b]!;
      }
    }
    out.length = P;
    return out;
  }
}
