/**
 * GGUF vocabularies <-> tokenizer.json.
 *
 * A GGUF file stores its tokenizer as `tokenizer.ggml.*` metadata. Rather than reimplement llama.cpp's tokenizers,
 * we rebuild the equivalent tokenizer.json and let @huggingface/tokenizers run it:
 * - model "gpt2" (byte-level BPE): tokens + merges; the pre-tokenizer regex chosen by `tokenizer.ggml.pre`
 *   (the same regexes llama.cpp uses), llama3 also skips merges for words already in the vocab (ignore_merges).
 * - model "llama" (SentencePiece BPE): tokens + scores. SentencePiece repeatedly merges the adjacent pair whose
 *   merged piece has the highest score, so a BPE model whose merge ranks follow the merged pieces' scores
 *   is the same algorithm (as Hugging Face's own Llama converter does); characters outside the vocab fall back to
 *   <0xXX> byte tokens; spaces become U+2581 with one prepended (add_space_prefix).
 * The reverse is in tokenizer-gguf-export.ts.
 */
import { SteerlabError } from "../errors.js";
import { bpeModelJson } from "./bpe-json.js";

/** GGUF token types (llama.cpp's llama_token_type). */
export const GGUF_TOKEN_TYPE = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

/** The pre-tokenizer split patterns llama.cpp applies per `tokenizer.ggml.pre` family, in order. */
export const LLAMA3_PATTERN =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const QWEN2_PATTERN =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// The same two patterns as written in the models' own tokenizer.json files (case-insensitive group).
export const LLAMA3_PATTERN_HF =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const QWEN2_PATTERN_HF =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const QWEN35_PATTERN =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * A pre-tokenizer family: the regexes llama.cpp splits with, one after another (null: GPT-2's, which the ByteLevel
 * pre-tokenizer applies itself), whether whole words found in the vocab skip BPE, and llama.cpp's add_bos default.
 */
interface PreFamily {
  patterns: string[] | null;
  ignoreMerges: boolean;
  addBos: boolean;
}
const family = (patterns: string[] | null, ignoreMerges = false, addBos = false): PreFamily => ({
  patterns,
  ignoreMerges,
  addBos,
});
const GPT2 = family(null);
const LLAMA3 = family([LLAMA3_PATTERN], true, true);
const QWEN2 = family([QWEN2_PATTERN]);
const STARCODER = family(["\\p{N}", GPT2_PATTERN]);
/** `tokenizer.ggml.pre` values (as llama.cpp names them) -> family. Absent key = "default". */
const PRE_FAMILIES: Record<string, PreFamily> = {
  default: family(["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_PATTERN, "\\p{N}+", "[0-9][0-9][0-9]"]),
  "gpt-2": GPT2,
  "phi-2": GPT2,
  mpt: GPT2,
  olmo: GPT2,
  llama3: LLAMA3,
  "llama-v3": LLAMA3,
  "llama-bpe": LLAMA3,
  falcon3: LLAMA3,
  pixtral: LLAMA3,
  dbrx: family([LLAMA3_PATTERN]),
  "smaug-bpe": family([LLAMA3_PATTERN]),
  qwen2: QWEN2,
  "deepseek-r1-qwen": QWEN2,
  stablelm2: QWEN2,
  qwen35: family([QWEN35_PATTERN]),
  falcon: family(["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_PATTERN, "[0-9][0-9][0-9]"]),
  starcoder: STARCODER,
  refact: STARCODER,
  "command-r": STARCODER,
  smollm: STARCODER,
  codeshell: STARCODER,
  exaone: STARCODER,
};

/**
 * Every split pattern steerlab itself writes (llama.cpp's, per family) and the forms the models' own tokenizer.json
 * files carry: measured linear in the input, so tokenizers using only these run without the time-limited sandbox.
 */
export const KNOWN_PATTERNS: ReadonlySet<string> = new Set([
  ...Object.values(PRE_FAMILIES).flatMap((f) => f.patterns ?? []),
  LLAMA3_PATTERN_HF,
  QWEN2_PATTERN_HF,
]);

const byteLevel = (useRegex: boolean) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: true,
  use_regex: useRegex,
});
const split = (pattern: string) => ({
  type: "Split",
  pattern: { Regex: pattern },
  behavior: "Isolated",
  invert: false,
});

function preTokenizerJson(f: PreFamily): Record<string, unknown> {
  if (f.patterns === null) return byteLevel(true);
  return { type: "Sequence", pretokenizers: [...f.patterns.map(split), byteLevel(false)] };
}

type Meta = Map<string, unknown> | Record<string, unknown>;
const getter = (meta: Meta) => (key: string) => (meta instanceof Map ? meta.get(key) : meta[key]);

/** What tokenizerJsonFromGguf returns: a tokenizer.json object plus the facts kept outside it. */
export interface GgufTokenizerParts {
  json: Record<string, unknown>;
  bosTokenId: number | null;
  eosTokenIds: number[];
  chatTemplate: string | null;
}

/** Build a tokenizer.json object equivalent to the `tokenizer.ggml.*` metadata of a GGUF file. */
export function tokenizerJsonFromGguf(meta: Meta, file: string): GgufTokenizerParts {
  const get = getter(meta);
  const bad = (field: string, expected: string, got: unknown) =>
    new SteerlabError("bad_config", "invalid GGUF tokenizer metadata", {
      file,
      field,
      expected,
      got: String(got).slice(0, 80),
    });
  const model = get("tokenizer.ggml.model");
  const tokens = get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== "string")) {
    throw bad("tokenizer.ggml.tokens", "an array of strings", typeof tokens);
  }
  const n = tokens.length;
  const types = get("tokenizer.ggml.token_type") ?? new Array(n).fill(GGUF_TOKEN_TYPE.normal);
  if (!Array.isArray(types) || types.length !== n) {
    throw bad(
      "tokenizer.ggml.token_type",
      `an array of ${n} integers`,
      Array.isArray(types) ? types.length : types,
    );
  }
  const id = (key: string): number | null => {
    const raw = get(key);
    if (raw === undefined || raw === null) return null;
    const v = typeof raw === "bigint" ? Number(raw) : raw;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= n)
      throw bad(key, `a token id < ${n}`, v);
    return v;
  };
  const flag = (key: string, dflt: boolean): boolean => {
    const v = get(key);
    if (v === undefined) return dflt;
    if (typeof v !== "boolean") throw bad(key, "a boolean", v);
    return v;
  };
  const bos = id("tokenizer.ggml.bos_token_id");
  const eos = id("tokenizer.ggml.eos_token_id");
  const eogs = [eos, id("tokenizer.ggml.eot_token_id"), id("tokenizer.ggml.eom_token_id")];
  const eosTokenIds = [...new Set(eogs.filter((x): x is number => x !== null))];
  const unk = id("tokenizer.ggml.unknown_token_id");
  const pad = id("tokenizer.ggml.padding_token_id");
  const template = get("tokenizer.chat_template");
  const chatTemplate = typeof template === "string" ? template : null;

  // Control tokens (and the ids named as bos/eos/...) are special; user-defined ones are matched verbatim too.
  const specialIds = new Set([bos, unk, pad, ...eogs].filter((x): x is number => x !== null));
  const addedTokens: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const t = types[i];
    const special = t === GGUF_TOKEN_TYPE.control || t === GGUF_TOKEN_TYPE.unknown || specialIds.has(i);
    if (special || t === GGUF_TOKEN_TYPE.userDefined) {
      addedTokens.push({
        id: i,
        content: tokens[i],
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special,
      });
    }
  }

  const vocab: Record<string, number> = Object.create(null); // tokens such as "__proto__" are plain keys
  for (let i = n - 1; i >= 0; i--) vocab[tokens[i] as string] = i; // first occurrence wins on duplicates

  if (model === "gpt2") {
    const pre = get("tokenizer.ggml.pre") ?? "default";
    // Own keys only: "__proto__", "constructor" or "toString" must not find Object.prototype's members.
    const fam = typeof pre === "string" && Object.hasOwn(PRE_FAMILIES, pre) ? PRE_FAMILIES[pre] : undefined;
    if (!fam) {
      throw new SteerlabError("unsupported", "unsupported GGUF pre-tokenizer", {
        file,
        field: "tokenizer.ggml.pre",
        expected: Object.keys(PRE_FAMILIES).join(", "),
        got: String(pre).slice(0, 80),
      });
    }
    const merges = get("tokenizer.ggml.merges");
    if (!Array.isArray(merges))
      throw bad("tokenizer.ggml.merges", "an array of 'a b' strings", typeof merges);
    const pairs = merges.map((m, i): [string, string] => {
      const s = String(m);
      const at = s.indexOf(" ", 1); // a piece may itself start with a space, never be empty
      if (at < 0) throw bad(`tokenizer.ggml.merges[${i}]`, "'left right'", s);
      return [s.slice(0, at), s.slice(at + 1)];
    });
    const json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: preTokenizerJson(fam),
      post_processor: specialTokensProcessor(
        tokens,
        flag("tokenizer.ggml.add_bos_token", fam.addBos) ? bos : null,
        flag("tokenizer.ggml.add_eos_token", false) ? eos : null,
      ),
      decoder: byteLevel(true),
      model: bpeModelJson(vocab, pairs, { ignoreMerges: fam.ignoreMerges }),
    };
    return { json, bosTokenId: bos, eosTokenIds, chatTemplate };
  }

  if (model === "llama") {
    const scores = get("tokenizer.ggml.scores");
    if (!Array.isArray(scores) || scores.length !== n) {
      throw bad(
        "tokenizer.ggml.scores",
        `an array of ${n} numbers`,
        Array.isArray(scores) ? scores.length : scores,
      );
    }
    const addSpacePrefix = flag("tokenizer.ggml.add_space_prefix", true);
    const json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: {
        type: "Sequence",
        normalizers: [
          ...(addSpacePrefix ? [{ type: "Prepend", prepend: "\u2581" }] : []),
          { type: "Replace", pattern: { String: " " }, content: "\u2581" },
        ],
      },
      pre_tokenizer: null,
      post_processor: specialTokensProcessor(
        tokens,
        flag("tokenizer.ggml.add_bos_token", true) ? bos : null,
        flag("tokenizer.ggml.add_eos_token", false) ? eos : null,
      ),
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "\u2581" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          ...(addSpacePrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
        ],
      },
      model: bpeModelJson(
        vocab,
        mergesFromScores(tokens as string[], scores as number[], types as number[], vocab),
        { unkToken: unk === null ? null : (tokens[unk] as string), byteFallback: true },
      ),
    };
    return { json, bosTokenId: bos, eosTokenIds, chatTemplate };
  }

  throw new SteerlabError("unsupported", "unsupported GGUF tokenizer model", {
    file,
    field: "tokenizer.ggml.model",
    expected: '"gpt2" (byte-level BPE) or "llama" (SentencePiece)',
    got: String(model),
  });
}

/**
 * SentencePiece scores -> BPE merges: every split of a mergeable piece into two vocab pieces is a merge, ranked by
 * the merged piece's score (higher first), then its id, then the left part's length (shorter first).
 */
function mergesFromScores(
  tokens: readonly string[],
  scores: readonly number[],
  types: readonly number[],
  vocab: Record<string, number>,
): [string, string][] {
  const found: { left: string; right: string; score: number; id: number }[] = [];
  const mergeable = (i: number) =>
    types[i] === GGUF_TOKEN_TYPE.normal || types[i] === GGUF_TOKEN_TYPE.userDefined;
  for (let id = 0; id < tokens.length; id++) {
    if (!mergeable(id)) continue;
    const chars = Array.from(tokens[id] as string);
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join("");
      const right = chars.slice(k).join("");
      const l = vocab[left];
      const r = vocab[right];
      if (l !== undefined && r !== undefined && mergeable(l) && mergeable(r)) {
        found.push({ left, right, score: scores[id] as number, id });
      }
    }
  }
  found.sort((a, b) => b.score - a.score || a.id - b.id || a.left.length - b.left.length);
  return found.map((m) => [m.left, m.right]);
}

/** A TemplateProcessing post-processor that adds BOS and/or EOS (a no-op one when neither). */
function specialTokensProcessor(tokens: readonly unknown[], bos: number | null, eos: number | null) {
  const single: unknown[] = [];
  const pair: unknown[] = [];
  const special: Record<string, unknown> = Object.create(null);
  const add = (list: unknown[], id: number, typeId: number) => {
    const content = String(tokens[id]);
    list.push({ SpecialToken: { id: content, type_id: typeId } });
    special[content] = { id: content, ids: [id], tokens: [content] };
  };
  if (bos !== null) add(single, bos, 0);
  single.push({ Sequence: { id: "A", type_id: 0 } });
  if (eos !== null) add(single, eos, 0);
  if (bos !== null) add(pair, bos, 0);
  pair.push({ Sequence: { id: "A", type_id: 0 } });
  if (eos !== null) add(pair, eos, 0);
  if (bos !== null) add(pair, bos, 1);
  pair.push({ Sequence: { id: "B", type_id: 1 } });
  if (eos !== null) add(pair, eos, 1);
  return { type: "TemplateProcessing", single, pair, special_tokens: special };
}
