/**
 * The reference engine: the plain-TypeScript forward behind the Engine contract. Exact and readable, not fast;
 * the oracle the ONNX Runtime path is tested against.
 */
import type { ModelConfig } from "../model/config.js";
import type { Batch, Engine, ForwardOptions, ForwardResult, KVCache } from "../model/engine.js";
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

  async forward(batch: Batch, opts?: ForwardOptions): Promise<ForwardResult> {
    return referenceForward(this.model, batch, opts);
  }

  async dispose(): Promise<void> {}
}
