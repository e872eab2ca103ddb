/**
 * tokenizer.json -> GGUF `tokenizer.ggml.*` metadata, so a GGUF file steerlab writes carries a vocabulary that
 * llama.cpp loads. Byte-level BPE only (GPT-2, Llama-3 and Qwen2 pre-tokenizers): what steerlab's own trainer
 * produces and what most BPE models ship. Anything llama.cpp would tokenize differently is refused, not approximated.
 */
import { SteerlabError } from "../errors.js";
import {
  GGUF_TOKEN_TYPE,
  LLAMA3_PATTERN,
  LLAMA3_PATTERN_HF,
  QWEN2_PATTERN,
  QWEN2_PATTERN_HF,
} from "./tokenizer-gguf.js";

/** Options for ggufTokenizerMetadata; ids default to what the tokenizer.json's post-processor adds. */
export interface GgufTokenizerOptions {
  /** null: the model has no BOS (then add_bos_token is false, whatever the post-processor does). */
  bosTokenId?: number | null;
  eosTokenId?: number | null;
  /** Override add_bos_token / add_eos_token (default: what the post-processor adds, given the id exists). */
  addBos?: boolean;
  addEos?: boolean;
  chatTemplate?: string | null;
}

type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined;

function unsupported(field: string, expected: string, got: unknown): SteerlabError {
  return new SteerlabError("unsupported", "cannot express this tokenizer.json as a GGUF vocabulary", {
    field,
    expected,
    got: String(JSON.stringify(got)).slice(0, 120),
  });
}

/** The `tokenizer.ggml.*` keys (and tokenizer.chat_template) for a byte-level BPE tokenizer.json. */
export function ggufTokenizerMetadata(
  tokenizerJson: unknown,
  opts: GgufTokenizerOptions = {},
): Record<string, unknown> {
  const tj = asObj(tokenizerJson) ?? {};
  const model = asObj(tj.model);
  const vocab = asObj(model?.vocab);
  if (model?.type !== "BPE" || !vocab || !Array.isArray(model.merges)) {
    throw unsupported("model", "a BPE model with vocab and merges", model?.type);
  }
  const decoder = asObj(tj.decoder);
  if (decoder?.type !== "ByteLevel")
    throw unsupported("decoder", "ByteLevel (byte-level BPE)", decoder?.type);
  if (tj.normalizer !== null && tj.normalizer !== undefined) {
    throw unsupported("normalizer", "none (llama.cpp's BPE does not normalise)", tj.normalizer);
  }
  const pre = ggufPreName(tj.pre_tokenizer, model.ignore_merges === true);
  if (!pre) {
    throw unsupported(
      "pre_tokenizer",
      "GPT-2, Llama-3 or Qwen2 style byte-level splitting (ignore_merges only with the Llama-3 regex)",
      { pre_tokenizer: tj.pre_tokenizer, ignore_merges: model.ignore_merges },
    );
  }

  // tokens[id]; ids no token uses become unused placeholders, as llama.cpp's converter writes them.
  const byId = new Map<number, { content: string; type: number }>();
  for (const [content, id] of Object.entries(vocab)) {
    if (typeof id === "number") byId.set(id, { content, type: GGUF_TOKEN_TYPE.normal });
  }
  for (const t of Array.isArray(tj.added_tokens) ? tj.added_tokens : []) {
    const a = asObj(t);
    if (typeof a?.id !== "number" || typeof a.content !== "string") continue;
    byId.set(a.id, {
      content: a.content,
      type: a.special ? GGUF_TOKEN_TYPE.control : GGUF_TOKEN_TYPE.userDefined,
    });
  }
  let n = 0;
  for (const id of byId.keys()) n = Math.max(n, id + 1);
  const tokens: string[] = new Array(n);
  const tokenType: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = byId.get(i);
    tokens[i] = t?.content ?? `[PAD${i}]`;
    tokenType[i] = t?.type ?? GGUF_TOKEN_TYPE.unused;
  }
  const merges = (model.merges as unknown[]).map((m) => (Array.isArray(m) ? m.join(" ") : String(m)));

  // BOS/EOS: explicit options, else the special tokens the post-processor puts around a sequence.
  const added = postProcessorSpecials(tj.post_processor);
  const idOf = (content: string | undefined) => {
    const i = content === undefined ? -1 : tokens.indexOf(content);
    return i < 0 ? null : i;
  };
  const bos = opts.bosTokenId !== undefined ? opts.bosTokenId : idOf(added.first);
  const eos = opts.eosTokenId !== undefined ? opts.eosTokenId : idOf(added.last);

  const meta: Record<string, unknown> = {
    "tokenizer.ggml.model": "gpt2",
    "tokenizer.ggml.pre": pre,
    "tokenizer.ggml.tokens": tokens,
    "tokenizer.ggml.token_type": tokenType,
    "tokenizer.ggml.merges": merges,
    // llama.cpp falls back to default ids when add_bos is on without an id: never write that combination.
    "tokenizer.ggml.add_bos_token": bos !== null && (opts.addBos ?? added.first !== undefined),
    "tokenizer.ggml.add_eos_token": eos !== null && (opts.addEos ?? added.last !== undefined),
  };
  if (bos !== null) meta["tokenizer.ggml.bos_token_id"] = bos;
  if (eos !== null) meta["tokenizer.ggml.eos_token_id"] = eos;
  if (opts.chatTemplate) meta["tokenizer.chat_template"] = opts.chatTemplate;
  return meta;
}

/**
 * The `tokenizer.ggml.pre` name of a byte-level pre-tokenizer, or null if llama.cpp has no equivalent. llama.cpp ties
 * ignore_merges to the name: on for llama-bpe, off for dbrx (same regex), gpt-2 and qwen2.
 */
function ggufPreName(value: unknown, ignoreMerges: boolean): string | null {
  const pre = asObj(value);
  if (pre?.type === "ByteLevel" && pre.use_regex !== false) return ignoreMerges ? null : "gpt-2";
  const list = pre?.type === "Sequence" && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [];
  if (list.length !== 2) return null;
  const s = asObj(list[0]);
  const b = asObj(list[1]);
  if (s?.type !== "Split" || b?.type !== "ByteLevel" || b.use_regex !== false) return null;
  const regex = asObj(s.pattern)?.Regex;
  if (regex === LLAMA3_PATTERN || regex === LLAMA3_PATTERN_HF) return ignoreMerges ? "llama-bpe" : "dbrx";
  if ((regex === QWEN2_PATTERN || regex === QWEN2_PATTERN_HF) && !ignoreMerges) return "qwen2";
  return null;
}

/** The special tokens a TemplateProcessing post-processor puts before / after a single sequence. */
function postProcessorSpecials(value: unknown): { first?: string; last?: string } {
  const pp = asObj(value);
  if (pp?.type === "Sequence" && Array.isArray(pp.processors)) {
    for (const p of pp.processors) {
      const r = postProcessorSpecials(p);
      if (r.first !== undefined || r.last !== undefined) return r;
    }
    return {};
  }
  if (pp?.type !== "TemplateProcessing" || !Array.isArray(pp.single)) return {};
  const single = pp.single as unknown[];
  // Each item is {SpecialToken: {id}} or {Sequence: {id: "A"}}; special_tokens maps id -> {tokens: [content]}.
  const specialName = (item: unknown) => asObj(asObj(item)?.SpecialToken)?.id as string | undefined;
  const content = (name: string | undefined) => {
    const tokens = name === undefined ? undefined : asObj(asObj(pp.special_tokens)?.[name])?.tokens;
    return Array.isArray(tokens) && typeof tokens[0] === "string" ? tokens[0] : undefined;
  };
  return {
    first: content(specialName(single[0])),
    last: single.length > 1 ? content(specialName(single[single.length - 1])) : undefined,
  };
}
