/**
 * The reference engine: the plain-TypeScript forward behind the Engine contract. Exact and readable, not fast;
 * the oracle the ONNX Runtime path is tested against.
 */

import { SteerlabError } from "../errors.js";
import { checkFiniteOutput } from "../io/finite.js";
import type { ModelConfig } from "../model/config.js";
import {
  type Batch,
  checkFork,
  type Engine,
  type ForwardOptions,
  type ForwardResult,
  type KVCache,
} from "../model/engine.js";
import type { LoadedModel } from "../model/model.js";
import type { Weights } from "../model/weights.js";
import { ReferenceCache } from "./cache.js";
import { type ReferenceModel, referenceForward, referenceModel } from "./forward.js";

export interface ReferenceOptions {
  gelu?: ReferenceModel["gelu"];
}

export class ReferenceEngine implements Engine {
  readonly config: ModelConfig;
  readonly kind = "reference";
  readonly model: ReferenceModel;
  allowNonFinite = false;
  private disposed = false;

  /**
   * Checks every weight against the config (one error listing all problems). `gelu: "ggml-f16-table"`
   * reproduces llama.cpp's CPU GELU lookup table, for parity checks against llama.cpp on GPT-2.
   */
  constructor(config: ModelConfig, weights: Weights, file?: string, opts: ReferenceOptions = {}) {
    this.config = config;
    this.model = referenceModel(config, weights, file, opts.gelu);
  }

  static fromModel(m: LoadedModel, opts: ReferenceOptions = {}): ReferenceEngine {
    return new ReferenceEngine(m.config, m.weights, m.source.path, opts);
  }

  newCache(batch: number): KVCache {
    return new ReferenceCache(this.config, batch);
  }

  forkCache(cache: KVCache, rowsPerSource: number, room = 0): KVCache {
    if (!(cache instanceof ReferenceCache) || cache.config !== this.config)
      throw new SteerlabError("bad_input", "cache was not made by this engine", {
        field: "cache",
        hint: "use engine.newCache(batch)",
      });
    checkFork(rowsPerSource, room);
    return cache.fork(rowsPerSource, room);
  }

  async forward(batch: Batch, opts: ForwardOptions = {}): Promise<ForwardResult> {
    if (this.disposed)
      throw new SteerlabError("bad_input", "engine was disposed", { hint: "create a new engine" });
    const r = referenceForward(this.model, batch, opts);
    checkFiniteOutput(r.logits, r.vocab, "logits", {
      allowNonFinite: opts.allowNonFinite ?? this.allowNonFinite,
    });
    return r;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}
