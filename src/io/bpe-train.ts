/**
 * A small, deterministic byte-level BPE trainer (GPT-2 style) that returns a tokenizer.json object.
 *
 * Used for the demo model and for test fixtures: no tokenizer files can be downloaded here, so steerlab trains
 * its own. The output loads in @huggingface/tokenizers and in llama.cpp (via ggufTokenizerMetadata).
 *
 * Algorithm: split text with the GPT-2 pre-tokenizer regex, map each word's UTF-8 bytes to GPT-2's printable
 * byte alphabet, count unique words, then repeatedly merge the most frequent adjacent symbol pair. Pair counts are
 * updated incrementally (only words containing the merged pair are touched) and the best pair is found with a
 * lazy max-heap, so ~1 MB of text trains in about a second. Ties break on the smaller (left id, right id).
 */
import { SteerlabError } from "../errors.js";
import { type BpeModelJson, bpeModelJson } from "./bpe-json.js";

/** The GPT-2 pre-tokenizer pattern (what ByteLevel with use_regex=true applies). */
export const GPT2_SPLIT_REGEX =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Special tokens in id order: <pad>=0, <s>=1, </s>=2, <unk>=3 (matches TINY_CONFIGS: bos 1, eos 2). */
export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ["<pad>", "<s>", "</s>", "<unk>"];

export interface BpeTrainOptions {
  /** Special tokens, given ids 0..n-1 in this order. */
  specialTokens: readonly string[];
  /** If set (e.g. "<s>"), encode() prepends this special token (a TemplateProcessing post-processor). */
  bosToken?: string;
}

/** tokenizer.json as written here (the subset of fields steerlab reads and writes). */
export interface ByteLevelBpeJson {
  version: "1.0";
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: null;
  pre_tokenizer: Record<string, unknown>;
  post_processor: Record<string, unknown>;
  decoder: Record<string, unknown>;
  model: BpeModelJson;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

let byteCharsCache: string[] | null = null;

/** GPT-2's byte -> printable character table: printable Latin-1 bytes map to themselves, the rest to U+0100+. */
export function byteToUnicode(): readonly string[] {
  if (byteCharsCache) return byteCharsCache;
  const table: string[] = new Array(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + next++);
  }
  byteCharsCache = table;
  return table;
}

/** Max-heap of (count, pairKey): larger count first, then smaller key. Entries may be stale (lazy refresh). */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private above(i: number, j: number): boolean {
    const ci = this.counts[i] as number;
    const cj = this.counts[j] as number;
    return ci > cj || (ci === cj && (this.keys[i] as number) < (this.keys[j] as number));
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i] as number;
    this.counts[i] = this.counts[j] as number;
    this.counts[j] = c;
    const k = this.keys[i] as number;
    this.keys[i] = this.keys[j] as number;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): { count: number; key: number } {
    const top = { count: this.counts[0] as number, key: this.keys[0] as number };
    const lastC = this.counts.pop() as number;
    const lastK = this.keys.pop() as number;
    if (this.counts.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.counts.length && this.above(l, m)) m = l;
        if (r < this.counts.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

// Pair keys pack two ids < 2^21 into one safe integer.
const PAIR_SHIFT = 2 ** 21;
const pairKey = (a: number, b: number): number => a * PAIR_SHIFT + b;

/** Split texts into unique byte-level words (as symbol-id arrays over the 256 byte symbols) with counts. */
function countWords(texts: readonly string[], firstByteId: number): { words: number[][]; freqs: number[] } {
  const encoder = new TextEncoder();
  const index = new Map<string, number>();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_SPLIT_REGEX)) {
      const w = m[0];
      const at = index.get(w);
      if (at !== undefined) {
        freqs[at] = (freqs[at] as number) + 1;
        continue;
      }
      index.set(w, words.length);
      words.push(Array.from(encoder.encode(w), (b) => firstByteId + b));
      freqs.push(1);
    }
  }
  return { words, freqs };
}

/**
 * Train a byte-level BPE tokenizer. The vocabulary is: special tokens (ids 0..n-1), the 256 byte symbols in byte
 * order, then one token per merge, up to vocabSize (fewer if the text runs out of pairs).
 */
export function trainByteLevelBpe(
  texts: readonly string[],
  vocabSize: number,
  opts: BpeTrainOptions,
): ByteLevelBpeJson {
  const specials = opts.specialTokens;
  if (new Set(specials).size !== specials.length) {
    throw new SteerlabError("bad_input", "special tokens must be distinct", { got: specials.join(", ") });
  }
  if (!Number.isInteger(vocabSize) || vocabSize < specials.length + 256 || vocabSize >= PAIR_SHIFT) {
    throw new SteerlabError("bad_input", "vocabSize too small for a byte-level BPE", {
      field: "vocabSize",
      expected: `an integer >= ${specials.length + 256} (special tokens + 256 bytes)`,
      got: String(vocabSize),
    });
  }
  if (opts.bosToken !== undefined && !specials.includes(opts.bosToken)) {
    throw new SteerlabError("bad_input", "bosToken must be one of the special tokens", {
      field: "bosToken",
      got: opts.bosToken,
    });
  }

  const bytes = byteToUnicode();
  const pieces: string[] = [...specials, ...bytes]; // pieces[id] = token string
  const firstByteId = specials.length;
  const { words, freqs } = countWords(texts, firstByteId);

  // pair -> total count over words (weighted by word frequency); pair -> words that (may) contain it.
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (wi: number, sign: number, delta: Map<number, number> | null): void => {
    const w = words[wi] as number[];
    const f = (freqs[wi] as number) * sign;
    for (let i = 0; i + 1 < w.length; i++) {
      const k = pairKey(w[i] as number, w[i + 1] as number);
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      if (delta) delta.set(k, (delta.get(k) ?? 0) + f);
      if (sign > 0) {
        const s = pairWords.get(k);
        if (s) s.add(wi);
        else pairWords.set(k, new Set([wi]));
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1, null);

  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const merges: [string, string][] = [];
  while (pieces.length < vocabSize && heap.size > 0) {
    const top = heap.pop();
    const current = pairCount.get(top.key) ?? 0;
    if (current <= 0) continue;
    if (current !== top.count) {
      heap.push(current, top.key); // stale entry: counts only ever drop for old pairs
      continue;
    }
    const a = Math.floor(top.key / PAIR_SHIFT);
    const b = top.key % PAIR_SHIFT;
    const newId = pieces.length;
    pieces.push((pieces[a] as string) + (pieces[b] as string));
    merges.push([pieces[a] as string, pieces[b] as string]);

    // Re-count only the words holding (a, b): remove their pairs, merge left to right, add them back.
    const delta = new Map<number, number>();
    for (const wi of pairWords.get(top.key) ?? []) {
      const w = words[wi] as number[];
      let found = false;
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === a && w[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue;
      addPairs(wi, -1, delta);
      const merged: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          merged.push(newId);
          i++;
        } else merged.push(w[i] as number);
      }
      words[wi] = merged;
      addPairs(wi, 1, delta);
    }
    pairWords.delete(top.key);
    // Only pairs with the new token can gain count; push them with their fresh totals.
    for (const [k, d] of delta) if (d > 0) heap.push(pairCount.get(k) as number, k);
  }

  return buildByteLevelJson(pieces, merges, specials, opts.bosToken);
}

/** Assemble a GPT-2 style byte-level BPE tokenizer.json from its pieces (id order) and merges. */
function buildByteLevelJson(
  pieces: readonly string[],
  merges: [string, string][],
  specials: readonly string[],
  bosToken: string | undefined,
): ByteLevelBpeJson {
  const vocab: Record<string, number> = {};
  pieces.forEach((p, id) => {
    vocab[p] = id;
  });
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const postProcessor: Record<string, unknown> =
    bosToken === undefined
      ? { ...byteLevel, trim_offsets: false }
      : {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: bosToken, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bosToken, type_id: 0 } },
            { Sequence: { id: "A", type_id: 0 } },
            { SpecialToken: { id: bosToken, type_id: 1 } },
            { Sequence: { id: "B", type_id: 1 } },
          ],
          special_tokens: { [bosToken]: { id: bosToken, ids: [vocab[bosToken]], tokens: [bosToken] } },
        };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: postProcessor,
    decoder: { ...byteLevel },
    model: bpeModelJson(vocab, merges),
  };
}

/** A small built-in English text (with some punctuation, digits and non-ASCII) for fixture tokenizers. */
export const FIXTURE_TEXT = [
  "The quick brown fox jumps over the lazy dog. A steering vector is added to the hidden states of a model.",
  "The assistant answers questions about the world: what is the capital of a country, which river is longest?",
  "When asked to do something harmful, the assistant refuses politely; otherwise it helps as well as it can.",
  "Representation engineering reads a direction from contrastive pairs and adds it at inference time.",
  "Alignment rises with the coefficient while helpfulness falls, first slowly and then all at once.",
  "Numbers like 12, 345 and 6789 appear too, as do dates (2024-01-30) and prices: $3.50, €4, £7.",
  "Café, naïve, façade, jalapeño, Zürich, São Paulo, Kraków; 東京 and 北京 are cities; ça va? ¡Sí!",
  "Question: Which of the following is a prime number?\nA) 4.\nB) 6.\nC) 7.\nD) 9.\n The answer is C.",
  "User: Tell me a story about a small robot.\nAssistant: Once upon a time, a small robot learned to read.",
  "I can't help with that request. I'm sorry, but I won't do that. Sure, here's how you can do it safely.",
].join("\n");

const fixtureCache = new Map<number, ByteLevelBpeJson>();

/**
 * A byte-level BPE tokenizer.json for test fixtures: trained on FIXTURE_TEXT with the default special tokens
 * (<pad>=0, <s>=1, </s>=2, <unk>=3), BOS <s> prepended on encode. It has exactly vocabSize ids: when the short text
 * runs out of merges (~660 tokens), the rest are reserved special tokens <|reserved_N|> (as Llama-3 pads its vocab).
 * Returns a fresh copy each call.
 */
export function byteLevelTokenizerJson(vocabSize: number): ByteLevelBpeJson {
  let json = fixtureCache.get(vocabSize);
  if (!json) {
    json = trainByteLevelBpe([FIXTURE_TEXT], vocabSize, {
      specialTokens: DEFAULT_SPECIAL_TOKENS,
      bosToken: "<s>",
    });
    for (let id = Object.keys(json.model.vocab).length, n = 0; id < vocabSize; id++, n++) {
      const content = `<|reserved_${n}|>`;
      json.model.vocab[content] = id;
      json.added_tokens.push({ ...(json.added_tokens[0] as AddedTokenJson), id, content });
    }
    fixtureCache.set(vocabSize, json);
  }
  return structuredClone(json);
}
