/**
 * The normalized model configuration: the model facts every backend needs, independent of the file format.
 * Built from HF config.json (parseHfConfig) or GGUF metadata (io/gguf-model.ts).
 */
import { SteerlabError } from "../errors.js";
import { archSpec } from "./arch/registry.js";
import type { ArchName } from "./arch/spec.js";

export type RopeScaling =
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    }
  | { type: "linear"; factor: number };

export interface ModelConfig {
  arch: ArchName;
  vocabSize: number;
  hiddenSize: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  intermediateSize: number;
  normEps: number;
  maxPositions: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tiedEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

type Json = Record<string, unknown>;

function num(j: Json, keys: string[], file: string, fallback?: number): number {
  for (const k of keys) {
    const v = j[k];
    if (typeof v === "number" && Number.isFinite(v)) return v;
    if (v !== undefined && v !== null) {
      throw new SteerlabError("bad_config", `config field "${k}" is not a finite number`, {
        file,
        field: k,
        expected: "a number",
        got: JSON.stringify(v),
      });
    }
  }
  if (fallback !== undefined) return fallback;
  throw new SteerlabError("bad_config", `config is missing "${keys[0]}"`, {
    file,
    field: keys[0],
    expected: "a number",
  });
}

function positiveInt(v: number, field: string, file: string): number {
  if (!Number.isInteger(v) || v <= 0) {
    throw new SteerlabError("bad_config", `config field "${field}" must be a positive integer`, {
      file,
      field,
      got: String(v),
    });
  }
  return v;
}

function parseRopeScaling(j: Json, file: string): RopeScaling | null {
  const rs = j.rope_scaling as Json | null | undefined;
  if (!rs) return null;
  const type = (rs.rope_type ?? rs.type) as string | undefined;
  if (type === "llama3") {
    return {
      type: "llama3",
      factor: num(rs, ["factor"], file),
      lowFreqFactor: num(rs, ["low_freq_factor"], file),
      highFreqFactor: num(rs, ["high_freq_factor"], file),
      originalMaxPositions: num(rs, ["original_max_position_embeddings"], file),
    };
  }
  if (type === "linear") return { type: "linear", factor: num(rs, ["factor"], file) };
  if (type === "default") return null;
  throw new SteerlabError("unsupported", `unsupported rope_scaling type "${type}"`, {
    file,
    field: "rope_scaling.rope_type",
    expected: "llama3 | linear",
    got: String(type),
  });
}

function tokenIds(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

/** Parse a Hugging Face config.json object. `file` is used in error messages. */
export function parseHfConfig(j: Json, file = "config.json"): ModelConfig {
  const modelType = j.model_type;
  if (typeof modelType !== "string") {
    throw new SteerlabError("bad_config", "config has no model_type", { file, field: "model_type" });
  }
  const spec = archSpec(modelType, file);
  const arch = spec.name;
  if (arch === "gpt2") {
    const hidden = positiveInt(num(j, ["n_embd"], file), "n_embd", file);
    const heads = positiveInt(num(j, ["n_head"], file), "n_head", file);
    return validate(
      {
        arch,
        vocabSize: positiveInt(num(j, ["vocab_size"], file), "vocab_size", file),
        hiddenSize: hidden,
        nLayers: positiveInt(num(j, ["n_layer"], file), "n_layer", file),
        nHeads: heads,
        nKvHeads: heads,
        headDim: hidden / heads,
        intermediateSize: num(j, ["n_inner"], file, 4 * hidden) || 4 * hidden,
        normEps: num(j, ["layer_norm_epsilon"], file, 1e-5),
        maxPositions: positiveInt(num(j, ["n_positions", "n_ctx"], file), "n_positions", file),
        ropeTheta: 0,
        ropeScaling: null,
        tiedEmbeddings: j.tie_word_embeddings !== false,
        bosTokenId: tokenIds(j.bos_token_id)[0] ?? null,
        eosTokenIds: tokenIds(j.eos_token_id),
      },
      file,
    );
  }
  const hidden = positiveInt(num(j, ["hidden_size"], file), "hidden_size", file);
  const heads = positiveInt(num(j, ["num_attention_heads"], file), "num_attention_heads", file);
  return validate(
    {
      arch,
      vocabSize: positiveInt(num(j, ["vocab_size"], file), "vocab_size", file),
      hiddenSize: hidden,
      nLayers: positiveInt(num(j, ["num_hidden_layers"], file), "num_hidden_layers", file),
      nHeads: heads,
      nKvHeads: positiveInt(num(j, ["num_key_value_heads"], file, heads), "num_key_value_heads", file),
      headDim: num(j, ["head_dim"], file, hidden / heads),
      intermediateSize: positiveInt(num(j, ["intermediate_size"], file), "intermediate_size", file),
      normEps: num(j, ["rms_norm_eps"], file, 1e-6),
      maxPositions: positiveInt(
        num(j, ["max_position_embeddings"], file, 2048),
        "max_position_embeddings",
        file,
      ),
      ropeTheta: num(j, ["rope_theta"], file, 10000),
      ropeScaling: parseRopeScaling(j, file),
      tiedEmbeddings: j.tie_word_embeddings === true,
      bosTokenId: tokenIds(j.bos_token_id)[0] ?? null,
      eosTokenIds: tokenIds(j.eos_token_id),
    },
    file,
  );
}

/**
 * Bounds on sizes read from a file, checked before anything is allocated or looped over. Released models stay far
 * below them (contexts up to ~10M tokens, vocabularies up to ~262K, widths up to ~25K).
 */
export const CONFIG_LIMITS = {
  maxPositions: 1 << 24,
  vocabSize: 1 << 22,
  hiddenSize: 1 << 17,
  intermediateSize: 1 << 20,
  nLayers: 1 << 12,
  nHeads: 1 << 12,
} as const;

/** The file fields behind each limit (config.json / GGUF), named in errors. */
const LIMIT_FIELDS: Record<keyof typeof CONFIG_LIMITS, string> = {
  maxPositions: "max_position_embeddings / context_length",
  vocabSize: "vocab_size",
  hiddenSize: "hidden_size / embedding_length",
  intermediateSize: "intermediate_size / feed_forward_length",
  nLayers: "num_hidden_layers / block_count",
  nHeads: "num_attention_heads / attention.head_count",
};

/** Cross-field checks shared by every config source. */
export function validate(c: ModelConfig, file: string): ModelConfig {
  const problems: string[] = [];
  for (const [k, max] of Object.entries(CONFIG_LIMITS) as [keyof typeof CONFIG_LIMITS, number][]) {
    const v = c[k];
    if (!Number.isInteger(v) || v < 1 || v > max)
      problems.push(`${LIMIT_FIELDS[k]} ${v} is outside [1, ${max}]`);
  }
  if (problems.length) {
    throw new SteerlabError("bad_config", `model configuration out of range: ${problems[0]}`, {
      file,
      problems,
      hint: "the file is corrupt or hostile; no released model comes near these limits",
    });
  }
  if (!Number.isInteger(c.headDim) || c.headDim <= 0)
    problems.push(`head_dim ${c.headDim} is not a positive integer`);
  if (c.nHeads % c.nKvHeads !== 0)
    problems.push(`num_attention_heads ${c.nHeads} is not a multiple of num_key_value_heads ${c.nKvHeads}`);
  if (c.arch !== "gpt2" && c.headDim % 2 !== 0)
    problems.push(`head_dim ${c.headDim} must be even for rotary embeddings`);
  if (!(c.normEps > 0)) problems.push(`norm epsilon ${c.normEps} must be > 0`);
  if (problems.length) {
    throw new SteerlabError("bad_config", "inconsistent model configuration", { file, problems });
  }
  return c;
}

/** Back to HF config.json (for writing models, e.g. test fixtures and the demo model). */
export function toHfConfig(c: ModelConfig): Json {
  if (c.arch === "gpt2") {
    return {
      model_type: "gpt2",
      architectures: ["GPT2LMHeadModel"],
      vocab_size: c.vocabSize,
      n_embd: c.hiddenSize,
      n_layer: c.nLayers,
      n_head: c.nHeads,
      n_inner: c.intermediateSize,
      n_positions: c.maxPositions,
      layer_norm_epsilon: c.normEps,
      activation_function: "gelu_new",
      tie_word_embeddings: c.tiedEmbeddings,
      bos_token_id: c.bosTokenId,
      eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds,
    };
  }
  const archClass = { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM" }[
    c.arch
  ];
  const rs = c.ropeScaling;
  return {
    model_type: c.arch,
    architectures: [archClass],
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    intermediate_size: c.intermediateSize,
    rms_norm_eps: c.normEps,
    max_position_embeddings: c.maxPositions,
    rope_theta: c.ropeTheta,
    rope_scaling:
      rs === null
        ? null
        : rs.type === "linear"
          ? { rope_type: "linear", factor: rs.factor }
          : {
              rope_type: "llama3",
              factor: rs.factor,
              low_freq_factor: rs.lowFreqFactor,
              high_freq_factor: rs.highFreqFactor,
              original_max_position_embeddings: rs.originalMaxPositions,
            },
    tie_word_embeddings: c.tiedEmbeddings,
    hidden_act: "silu",
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds,
  };
}
