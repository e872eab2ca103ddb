/** A plain summary of a loaded checkpoint, for `steerlab inspect` and reports. */
import { numel } from "../tensor.js";
import type { ModelConfig } from "./config.js";
import type { LoadedModel } from "./model.js";
import { expectedWeights } from "./weights.js";

export interface ModelSummary {
  path: string;
  format: "hf" | "gguf";
  arch: string;
  config: ModelConfig;
  parameters: number;
  fileWeightBytes: number;
  dtypes: Record<string, number>;
  tensors: number;
  fingerprint: string;
  tokenizer: {
    vocabSize: number;
    bosTokenId: number | null;
    eosTokenIds: number[];
    chatTemplate: boolean;
  } | null;
}

export function inspectModel(m: LoadedModel): ModelSummary {
  // From the shapes (the config's expected weights), so nothing is read from the file.
  const shapes = expectedWeights(m.config);
  let parameters = 0;
  for (const shape of shapes.values()) parameters += numel(shape);
  const tok = m.tokenizer;
  return {
    path: m.source.path,
    format: m.source.format,
    arch: m.config.arch,
    config: m.config,
    parameters,
    fileWeightBytes: m.fileWeightBytes,
    dtypes: m.dtypes,
    tensors: shapes.size,
    fingerprint: m.fingerprint,
    tokenizer: tok
      ? {
          vocabSize: tok.vocabSize,
          bosTokenId: tok.bosTokenId,
          eosTokenIds: [...tok.eosTokenIds],
          chatTemplate: tok.chatTemplate !== null,
        }
      : null,
  };
}
