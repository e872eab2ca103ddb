/**
 * The contract every forward implementation keeps: the plain-TS reference (reference/) and the ONNX Runtime
 * fast path (runtime/). Generation, scoring, activation reading and steering are written once against it.
 *
 * Batches are left-padded: every row has the same length T; mask 0 marks padding. A token's position is the
 * number of real tokens before it in its row (HF position_ids = cumsum(mask) - 1), counted across cached calls.
 */
import { SteerlabError } from "../errors.js";
import type { ModelConfig } from "./config.js";
import type { HookPoint } from "./hooks.js";

export interface Batch {
  /** Token ids [B][T] of the new tokens of this call; all rows the same length (left padding). */
  ids: readonly (readonly number[])[];
  /** 1 = real token, 0 = padding, [B][T]; omitted = all real. */
  mask?: readonly (readonly number[])[];
}

export interface HookContext {
  point: HookPoint;
  /** Activations of this call's tokens, [B, T, D] row-major. Writes take effect downstream. */
  hidden: Float32Array;
  batch: number;
  seq: number;
  dim: number;
  /** [B, T] absolute position of each token in its sequence; -1 for padding. Stable across cached calls. */
  positions: Int32Array;
}

/** A hook reads and/or edits the activations at one hook point during one call. */
export type Hook = (ctx: HookContext) => void;

export interface HookBinding {
  point: HookPoint;
  fn: Hook;
}

/** Opaque per-engine key/value cache for one batch of sequences. Create with engine.newCache(). */
export interface KVCache {
  readonly batch: number;
  /** Tokens held so far per row, padding included (the cached T). */
  readonly length: number;
}

export interface ForwardOptions {
  /** Hooks of this call only; nothing persists after the call returns. */
  hooks?: readonly HookBinding[];
  /** Continue from and extend this cache. Omitted: a fresh, uncached forward. */
  cache?: KVCache;
  /** Which logits to return: every position, only the last one of each row, or none. Default "last". */
  logits?: "all" | "last" | "none";
  /** Stop after this block (inclusive) when no logits are needed: saves the rest of the forward. */
  stopAfterLayer?: number;
  /**
   * Resume a forward at this block: skip the embedding and the blocks below, and use `inputHidden`
   * ([B, T, D], the resid_pre of `startLayer` read in an earlier call on the same batch) as the residual stream.
   * `batch` still gives the positions and the mask. Not allowed with a cache (the lower blocks' keys and
   * values would be missing). A sweep uses it to compute the unsteered part below the first steered layer once.
   */
  startLayer?: number;
  inputHidden?: Float32Array;
  /** Return NaN/Inf logits instead of throwing (debugging; default: the engine's allowNonFinite, false). */
  allowNonFinite?: boolean;
}

export interface ForwardResult {
  /** [B, Tout, V] with Tout = T for "all", 1 for "last", 0 for "none". */
  logits: Float32Array;
  batch: number;
  seq: number;
  vocab: number;
}

export interface Engine {
  readonly config: ModelConfig;
  /** Short name for reports: "reference", "onnxruntime" or "ggml". */
  readonly kind: string;
  newCache(batch: number): KVCache;
  /**
   * A new cache of cache.batch * rowsPerSource rows whose row k * rowsPerSource + j is a copy of source row k
   * (keys, values, padding and next position), leaving the source as it is. Continuing a fork equals running
   * the source's tokens and the new ones in one call. `room`: tokens per row the caller means to add (spare
   * capacity, so the next call need not grow the copy). Optional: without it a sweep does not share prompt
   * prefixes. A sweep runs a few-shot prefix once per r_e and forks it to every question of a chunk.
   */
  forkCache?(cache: KVCache, rowsPerSource: number, room?: number): KVCache;
  forward(batch: Batch, opts?: ForwardOptions): Promise<ForwardResult>;
  dispose(): Promise<void>;
  /** Default of ForwardOptions.allowNonFinite for this engine (openModel's allowNonFinite sets it). */
  allowNonFinite?: boolean;
}

function bad(message: string, field: string, expected: string, got: string): SteerlabError {
  return new SteerlabError("bad_input", message, { field, expected, got });
}

/** Validate forkCache's rowsPerSource and room. */
export function checkFork(rowsPerSource: number, room: number): void {
  if (!Number.isInteger(rowsPerSource) || rowsPerSource < 1)
    throw bad(
      "rowsPerSource must be a positive integer",
      "rowsPerSource",
      "an integer >= 1",
      String(rowsPerSource),
    );
  if (!Number.isInteger(room) || room < 0)
    throw bad("room must be a non-negative integer", "room", "an integer >= 0", String(room));
}

/** Validate startLayer/inputHidden (see ForwardOptions); return the first block to run. */
export function checkStart(opts: ForwardOptions, size: number, lastLayer: number): number {
  if (opts.startLayer === undefined && opts.inputHidden === undefined) return 0;
  const s = opts.startLayer ?? 0;
  if (!Number.isInteger(s) || s < 0 || s > lastLayer) {
    throw bad("startLayer out of range", "startLayer", `an integer in [0, ${lastLayer}]`, String(s));
  }
  if (!opts.inputHidden || opts.inputHidden.length !== size) {
    throw bad(
      "inputHidden must hold resid_pre of startLayer for the whole batch",
      "inputHidden",
      `${size} floats ([B, T, D])`,
      String(opts.inputHidden?.length),
    );
  }
  if (opts.cache) {
    throw bad("startLayer cannot be used with a cache", "cache", "no cache", "a cache");
  }
  return s;
}
