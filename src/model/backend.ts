/**
 * What a compute backend implements under the forward driver (driver.ts): compute only. The driver owns the
 * rest (checks, positions, masks, cache bookkeeping, hooks, residual adds, row selection, the non-finite check).
 *
 *   driver:   checks ─► positions, masks ─► begin() ─► embed ─► per block: attention, mlp (or block) ─► head(rows)
 *   backend:                                 └ per-call inputs (rope rows, attention mask, ...) built once here
 *
 * A backend keeps its keys and values in a store S of its own layout with spare capacity; the driver keeps, per
 * cache, how many slots are filled, which are padding and each row's next position. A call appends its keys and
 * values at slots [past.length, past.length + T) (spare slots), so a call that fails midway leaves the cache as
 * it was: the driver commits the new length only when every block ran.
 */
import type { ModelConfig } from "./config.js";
import type { HookPoint } from "./hooks.js";

/** One call's inputs, checked by the driver. Backends read them and must not modify them. */
export interface CallInputs<S> {
  B: number;
  T: number;
  /** [B*T] token ids; padding ids are 0. */
  ids: BigInt64Array;
  /** [B][T] 1 = real token, 0 = padding. */
  mask: readonly Uint8Array[];
  /** [B, T] absolute positions, -1 for padding. */
  positions: Int32Array;
  /**
   * The cache this call extends, with room for T more slots per row (already reserved), or null: an uncached
   * forward, whose keys and values are dropped after the call.
   */
  past: { store: S; length: number; mask: readonly Uint8Array[] } | null;
}

/**
 * One call's compute. A backend provides attention + mlp (every hook site reachable), a fused block (only
 * resid_pre / resid_post), spans chosen per call, or several; the driver uses the fused units where no hook
 * needs the inside.
 * Every buffer is [B, T, D] row-major; `x` is only read, results are new buffers the driver may edit.
 */
export interface BackendCall {
  /** Token (+ learned position) embeddings of this call: resid_pre of block 0. */
  embed(): Promise<Float32Array>;
  /** attn_out of block l from its resid_pre; appends this call's keys and values to the cache. */
  attention?(l: number, x: Float32Array): Promise<Float32Array>;
  /** mlp_out of block l from resid_pre + attn_out. */
  mlp?(l: number, x: Float32Array): Promise<Float32Array>;
  /**
   * resid_post of the last block of the fused span that starts at block l (ForwardBackend.spanOf; just block l
   * without spans) from resid_pre of block l; appends the span's keys and values to the cache.
   */
  block?(l: number, x: Float32Array): Promise<Float32Array>;
  /**
   * resid_post of block `last` from resid_pre of block `first`: blocks first..last as one unit chosen for this
   * call, by a backend that can run any range of blocks at once; appends their keys and values to the cache.
   * The driver runs each stretch of blocks where no hook of the call needs the stream in one span.
   * lastTokens: only each row's last token of block `last`'s output is needed (its [B, 1, D] is returned), so
   * that block's MLP may run on those rows alone (as llama.cpp skips unused outputs in its last layer); its keys
   * and values are still those of every token.
   */
  span?(first: number, last: number, x: Float32Array, lastTokens?: boolean): Promise<Float32Array>;
}

/** A backend's key/value store for a batch of rows: the driver grows and forks it, the backend reads and appends. */
export interface KVStore<S> {
  /** Make room for `need` slots per row, keeping the first `keep` of each row. */
  reserve(keep: number, need: number): void;
  /** A store of batch * n rows, row k * n + j a copy of row k's first `keep` slots, with room for `room` more. */
  fork(n: number, keep: number, room: number): S;
}

export interface ForwardBackend<S extends KVStore<S>> {
  readonly config: ModelConfig;
  /** Short name for reports: "reference", "onnxruntime", "ggml". */
  readonly kind: string;
  /** Capability: whether a hook at this (valid) point can be served. */
  canHook(point: HookPoint): boolean;
  /** How to reach a point canHook refuses (the hint of the driver's "unsupported" error). */
  readonly hookHint: string;
  /**
   * Capability: the blocks [first, last] that run as one unit with block l (its fused span). Absent: every block
   * is its own unit. A forward may start (startLayer) only at a span's first block and stop (stopAfterLayer)
   * only at a span's last.
   */
  spanOf?(l: number): readonly [number, number];
  /** An empty store for `batch` rows. */
  newStore(batch: number): S;
  begin(inputs: CallInputs<S>): BackendCall;
  /** Final norm and output head on `n` rows [n, D]: logits [n, V]. */
  head(rows: Float32Array, n: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}
