/** A plain summary of a loaded checkpoint, for `steerlab inspect` and reports. */
import { numel } from "../tensor.js";
import type { ModelConfig } from "./config.js";
import type { LoadedModel } from "./model.js";

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
  let parameters = 0;
  for (const t of m.weights.values()) parameters += numel(t.shape);
  const tok = m.tokenizer;
  return {
    path: m.source.path,
    format: m.source.format,
    arch: m.config.arch,
    config: m.config,
    parameters,
    fileWeightBytes: m.fileWeightBytes,
    dtypes: m.dtypes,
    tensors: m.weights.size,
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
