import type { Tokenizer } from "../io/tokenizer-types.js";
import type { ArchSpec } from "./arch/spec.js";
import type { ModelConfig } from "./config.js";
import type { LoadDtype, ModelWeights } from "./weights.js";

/** A checkpoint in memory: config, canonical weights and tokenizer, whatever format it came from. */
export interface LoadedModel {
  source: { path: string; format: "hf" | "gguf" };
  config: ModelConfig;
  spec: ArchSpec;
  /** Canonical weights; GGUF matrices stay in their quantized type (see weights.ts). */
  weights: ModelWeights;
  tokenizer: Tokenizer | null;
  /** Storage dtypes seen in the file, with tensor counts (for `inspect`). */
  dtypes: Record<string, number>;
  /** Bytes the weights occupy in the file. */
  fileWeightBytes: number;
  /** sha256 of config + tensor names/shapes + a sample of weight bytes: identifies the model for vector files. */
  fingerprint: string;
  /** What the loader accepted but a user should know (e.g. a special-token id that names no token). */
  warnings: string[];
}

/** Options every loader takes. */
export interface LoadOptions {
  /** Called once per warning as it happens (also collected in LoadedModel.warnings). */
  onWarning?: (message: string) => void;
  /** Decode quantized GGUF matrices to f32 at load (default false: they stay quantized; see weights.ts). */
  dense?: boolean;
  /** How dense matrices are held (weights.ts LoadDtype); default: defaultDtype (f32 when it fits). */
  dtype?: LoadDtype;
  /** Plain notes for the user as loading goes (what loads, how much memory it takes, a chosen default). */
  onInfo?: (message: string) => void;
}
