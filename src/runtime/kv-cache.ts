/**
 * The ONNX Runtime engine's KV cache: per block, K and V as ORT tensors [B, KV, S, hd] (the graphs' present
 * outputs, fed back as past inputs), plus the padding mask seen so far and each row's next position, so that
 * positions and masks continue across cached calls.
 */
import * as ort from "onnxruntime-node";
import type { KVCache } from "../model/engine.js";

export class OrtKVCache implements KVCache {
  /** Per block: K [B, KV, hd, S] (transposed for Q K^T) and V [B, KV, S, hd]. Empty (S = 0) at first. */
  k: ort.Tensor[];
  v: ort.Tensor[];
  /** [B][S] 1 = real token, 0 = padding, for every cached token. */
  mask: Uint8Array[];
  /** [B] real tokens seen so far per row = the next real token's position. */
  nextPos: Int32Array;
  length = 0;

  constructor(
    readonly owner: object,
    readonly batch: number,
    nLayers: number,
    nKvHeads: number,
    headDim: number,
  ) {
    const none = new Float32Array(0);
    this.k = Array.from(
      { length: nLayers },
      () => new ort.Tensor("float32", none, [batch, nKvHeads, headDim, 0]),
    );
    this.v = Array.from(
      { length: nLayers },
      () => new ort.Tensor("float32", none, [batch, nKvHeads, 0, headDim]),
    );
    this.mask = Array.from({ length: batch }, () => new Uint8Array(0));
    this.nextPos = new Int32Array(batch);
  }
}
