/**
 * Tiny seeded random-weight models on disk, in both formats: an HF folder and a GGUF file of the same
 * randomWeights(TINY_CONFIGS[name], seed), each with a byte-level BPE tokenizer of the config's vocab size.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { encodeGguf, type GgufMetadata, readGguf } from "../../src/io/gguf.js";
import { type GgufWriteDtype, saveGgufModel } from "../../src/io/gguf-model.js";
import { GGML_TYPE, quantize } from "../../src/io/gguf-quant.js";
import { saveHfModel } from "../../src/io/hf-model.js";
import type { StWriteDtype } from "../../src/io/safetensors.js";
import { ggufTokenizerMetadata } from "../../src/io/tokenizer.js";
import type { ModelConfig } from "../../src/model/config.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { denseWeights, type ModelWeights, type Weights } from "../../src/model/weights.js";

export interface TinyModelOptions {
  seed?: number;
  hfDtype?: StWriteDtype;
  ggufDtype?: GgufWriteDtype;
  /** Shard the safetensors weights at this many bytes. */
  shardBytes?: number;
}

export interface TinyModel {
  config: ModelConfig;
  weights: Weights;
  hfDir: string;
  ggufFile: string;
  tokenizerJson: object;
}

export function writeTinyModels(
  dir: string,
  name: keyof typeof TINY_CONFIGS,
  opts: TinyModelOptions = {},
): TinyModel {
  const config = structuredClone(TINY_CONFIGS[name]!);
  const weights = randomWeights(config, opts.seed ?? 1);
  const tokenizerJson = byteLevelTokenizerJson(config.vocabSize);
  const hfDir = join(dir, `${String(name)}-hf`);
  const ggufFile = join(dir, `${String(name)}.gguf`);
  saveHfModel(hfDir, config, weights, {
    tokenizerJson,
    // Keep the tokenizer's BOS behaviour consistent with the config (Qwen2-style configs have no BOS).
    tokenizerConfig:
      config.bosTokenId === null
        ? { bos_token: null, eos_token: "</s>", add_bos_token: false }
        : { bos_token: "<s>", eos_token: "</s>", add_bos_token: true },
    dtype: opts.hfDtype,
    shardBytes: opts.shardBytes,
  });
  saveGgufModel(ggufFile, config, weights, {
    tokenizerMeta: ggufTokenizerMetadata(tokenizerJson, {
      bosTokenId: config.bosTokenId,
      eosTokenId: config.eosTokenIds[0] ?? null,
    }),
    dtype: opts.ggufDtype,
  });
  return { config, weights, hfDir, ggufFile, tokenizerJson };
}

/** Same names and shapes; values bit-exact (tol 0) or within tol * |x| + 1e-7 (tol a relative bound). */
export function assertWeightsClose(gotW: ModelWeights, wantW: ModelWeights, tol = 0): void {
  const got = denseWeights(gotW);
  const want = denseWeights(wantW);
  const names = (w: Weights) => [...w.keys()].sort().join(",");
  if (names(got) !== names(want)) throw new Error(`weight names differ:\n${names(got)}\n${names(want)}`);
  for (const [name, t] of want) {
    const g = got.get(name)!;
    if (g.shape.join(",") !== t.shape.join(","))
      throw new Error(`${name}: shape [${g.shape}] != [${t.shape}]`);
    for (let i = 0; i < t.data.length; i++) {
      const x = t.data[i]!;
      const ok = tol === 0 ? Object.is(g.data[i], x) : Math.abs(g.data[i]! - x) <= tol * Math.abs(x) + 1e-7;
      if (!ok) throw new Error(`${name}[${i}]: ${g.data[i]} vs ${x} (tol ${tol})`);
    }
  }
}

/** Rewrite a GGUF file with edited metadata (tensors re-encoded as F32), optionally dropping one tensor. */
export function rewriteGguf(
  src: string,
  dst: string,
  edit: (m: GgufMetadata) => void,
  dropTensor?: string,
): void {
  const { header, tensors } = readGguf(src);
  edit(header.metadata);
  const out = header.tensors
    .filter((t) => t.name !== dropTensor)
    .map((t) => ({
      name: t.name,
      shape: t.shape,
      type: GGML_TYPE.F32,
      data: quantize(GGML_TYPE.F32, tensors.get(t.name)!.data),
    }));
  writeFileSync(dst, encodeGguf(header.metadata, out));
}

/** A 2-layer llama whose rows are 256 values, so every matrix (embedding and head included) takes the K-quant types. */
export const KQUANT_CONFIG: ModelConfig = {
  arch: "llama",
  vocabSize: 320,
  hiddenSize: 256,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 64,
  intermediateSize: 512,
  normEps: 1e-5,
  maxPositions: 128,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};
