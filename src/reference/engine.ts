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

export class ReferenceEngine implements Engine {
  readonly config: ModelConfig;
  readonly kind = "reference";
  readonly model: ReferenceModel;

  /** Checks every weight against the config (one error listing all problems). */
  constructor(config: ModelConfig, weights: Weights, file?: string) {
    this.config = config;
    this.model = referenceModel(config, weights, file);
  }

  static fromModel(m: LoadedModel): ReferenceEngine {
    return new ReferenceEngine(m.config, m.weights, m.source.path);
  }

  newCache(batch: number): KVCache {
    return new ReferenceCache(this.config, batch);
  }

  async forward(batch: Batch, opts?: ForwardOptions): Promise<ForwardResult> {
    return referenceForward(this.model, batch, opts);
  }

  async dispose(): Promise<void> {}
}
