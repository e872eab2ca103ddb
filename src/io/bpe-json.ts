/** The `model` object of a tokenizer.json BPE tokenizer, as @huggingface/tokenizers reads it. */
export interface BpeModelJson {
  type: "BPE";
  dropout: null;
  unk_token: string | null;
  continuing_subword_prefix: null;
  end_of_word_suffix: null;
  fuse_unk: boolean;
  byte_fallback: boolean;
  ignore_merges: boolean;
  vocab: Record<string, number>;
  merges: [string, string][];
}

/**
 * Byte-level BPE by default; SentencePiece-style vocabularies set `byteFallback` (<0xXX> pieces) and an unknown
 * token, which is then fused; Llama-3-style vocabularies set `ignoreMerges` (whole words in the vocab win).
 */
export function bpeModelJson(
  vocab: Record<string, number>,
  merges: [string, string][],
  o: { unkToken?: string | null; byteFallback?: boolean; ignoreMerges?: boolean } = {},
): BpeModelJson {
  const unk = o.unkToken ?? null;
  return {
    type: "BPE",
    dropout: null,
    unk_token: unk,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: o.byteFallback === true,
    byte_fallback: o.byteFallback === true,
    ignore_merges: o.ignoreMerges === true,
    vocab,
    merges,
  };
}
