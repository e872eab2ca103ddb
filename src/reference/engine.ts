/**
 * The reference engine: the forward driver (model/driver.ts) over the plain-TypeScript backend (forward.ts).
 * Exact and readable, not fast; the oracle the ONNX Runtime path is tested against.
 */

import type { ModelConfig } from "../model/config.js";
import { ForwardDriver } from "../model/driver.js";
import type { LoadedModel } from "../model/model.js";
import { denseWeights, type Weights } from "../model/weights.js";
import type { ReferenceKV } from "./cache.js";
import { ReferenceBackend, type ReferenceModel, referenceModel } from "./forward.js";

export interface ReferenceOptions {
  gelu?: ReferenceModel["gelu"];
}

export class ReferenceEngine extends ForwardDriver<ReferenceKV> {
  readonly model: ReferenceModel;

  /**
   * Checks every weight against the config (one error listing all problems). `gelu: "ggml-f16-table"`
   * reproduces llama.cpp's CPU GELU lookup table, for parity checks against llama.cpp on GPT-2.
   */
  constructor(config: ModelConfig, weights: Weights, file?: string, opts: ReferenceOptions = {}) {
    const model = referenceModel(config, weights, file, opts.gelu);
    super(new ReferenceBackend(model));
    this.model = model;
  }

  static fromModel(m: LoadedModel, opts: ReferenceOptions = {}): ReferenceEngine {
    return new ReferenceEngine(m.config, denseWeights(m.weights), m.source.path, opts);
  }
}
