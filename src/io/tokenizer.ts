/**
 * Tokenizers from Hugging Face files (tokenizer.json + tokenizer_config.json) or from GGUF metadata, all run by
 * @huggingface/tokenizers behind steerlab's Tokenizer interface.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { z } from "zod";
import { SteerlabError } from "../errors.js";
import { CONFIG_LIMITS } from "../model/config.js";
import { pickChatTemplate, renderChatTemplate } from "./chat-template.js";
import { readTextFile } from "./files.js";
import { tokenizerJsonFromGguf } from "./tokenizer-gguf.js";
import { type RawTokenizer, rawTokenizer } from "./tokenizer-sandbox.js";
import type { ChatMessage, Tokenizer } from "./tokenizer-types.js";

export { type GgufTokenizerOptions, ggufTokenizerMetadata } from "./tokenizer-gguf-export.js";

/** The fields of tokenizer_config.json (and special_tokens_map.json) that steerlab reads. */
export interface TokenizerConfig {
  bos_token?: unknown;
  eos_token?: unknown;
  add_bos_token?: unknown;
  add_eos_token?: unknown;
  chat_template?: unknown;
  clean_up_tokenization_spaces?: unknown;
  /** From generation_config.json: extra end-of-generation ids (e.g. Llama-3 instruct's <|eot_id|>). */
  eos_token_id?: unknown;
  [key: string]: unknown;
}

interface Facts {
  bosTokenId: number | null;
  eosTokenIds: number[];
  chatTemplate: string | null;
  /** null: leave BOS/EOS to the tokenizer.json post-processor; a boolean: the config decides. */
  addBos: boolean | null;
  addEos: boolean | null;
  cleanUpSpaces: boolean;
}

/** Longest text encode takes by default (~1M tokens; encoding runs at ~4 us per character here). */
export const MAX_ENCODE_CHARS = 1 << 22;

/** steerlab's Tokenizer over a @huggingface/tokenizers instance. */
class JsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly chatTemplate: string | null;

  private readonly raw: RawTokenizer;

  constructor(
    private readonly hf: HfTokenizer,
    private readonly facts: Facts,
    private readonly file: string,
    json: object,
  ) {
    this.raw = rawTokenizer(hf, json, file);
    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.bosTokenId = facts.bosTokenId;
    this.eosTokenIds = facts.eosTokenIds;
    this.chatTemplate = facts.chatTemplate;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean; maxChars?: number } = {}): number[] {
    const add = opts.addSpecialTokens ?? true;
    const max = opts.maxChars ?? MAX_ENCODE_CHARS;
    if (typeof text !== "string" || text.length > max) {
      throw new SteerlabError("bad_input", `text to encode is too long (limit ${max} characters)`, {
        file: this.file,
        expected: `at most ${max} characters`,
        got: typeof text === "string" ? `${text.length} characters` : typeof text,
        hint: "no model context holds that much; pass maxChars to raise the limit",
      });
    }
    const { addBos, addEos, bosTokenId, eosTokenIds } = this.facts;
    if (!add || (addBos === null && addEos === null)) return this.checkIds(this.raw.encode(text, add));
    // The config overrides the post-processor (as transformers does for add_bos_token / add_eos_token).
    const ids = this.raw.encode(text, false);
    if (addBos && bosTokenId !== null) ids.unshift(bosTokenId);
    if (addEos && eosTokenIds[0] !== undefined) ids.push(eosTokenIds[0]);
    return this.checkIds(ids);
  }

  /** The library returns `undefined` for a piece missing from the vocabulary when there is no unk token. */
  private checkIds(ids: number[]): number[] {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
        throw new SteerlabError("bad_file", "the tokenizer produced a token id outside its vocabulary", {
          file: this.file,
          field: `ids[${i}]`,
          expected: `an integer in [0, ${this.vocabSize})`,
          got: String(id),
          hint: "a piece of the text is missing from the vocabulary and the tokenizer has no unk token",
        });
      }
    }
    return ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new SteerlabError("bad_input", "token id out of range", {
          file: this.file,
          expected: `an integer in [0, ${this.vocabSize})`,
          got: String(id),
        });
      }
    }
    if (ids.length === 0) return "";
    return this.raw.decode([...ids], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.facts.cleanUpSpaces,
    });
  }

  tokenString(id: number): string {
    const s = Number.isInteger(id) ? this.hf.id_to_token(id) : undefined;
    if (s === undefined) {
      throw new SteerlabError("bad_input", "no such token id", {
        file: this.file,
        expected: `an id in [0, ${this.vocabSize})`,
        got: String(id),
      });
    }
    return s;
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean } = {}): string {
    if (this.chatTemplate === null) {
      throw new SteerlabError("unsupported", "this tokenizer has no chat template", {
        file: this.file,
        field: "chat_template",
        hint: "use a chat/instruct model, or format the prompt yourself",
      });
    }
    const name = (id: number | null | undefined) => (id == null ? null : (this.hf.id_to_token(id) ?? null));
    return renderChatTemplate(this.chatTemplate, messages, {
      addGenerationPrompt: opts.addGenerationPrompt ?? false,
      bosToken: name(this.bosTokenId),
      eosToken: name(this.eosTokenIds[0]),
      file: this.file,
    });
  }
}

/** A special token in tokenizer_config.json: a string or an AddedToken object {content}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return null;
}

/**
 * Token ids of a tokenizer.json: integers below CONFIG_LIMITS.vocabSize. The library builds a (sparse) array up to
 * the largest id and walks it, so one id of 1e9 would take minutes and GiBs before the first encode.
 */
const Id = z
  .number()
  .int()
  .nonnegative()
  .max(
    CONFIG_LIMITS.vocabSize - 1,
    `token ids stop at ${CONFIG_LIMITS.vocabSize - 1} (CONFIG_LIMITS.vocabSize)`,
  );
const TokenizerJson = z.object({
  added_tokens: z
    .array(z.object({ id: Id, content: z.string() }).passthrough())
    .optional()
    .nullable(),
  model: z
    .object({
      vocab: z
        .union([z.record(z.string(), Id), z.array(z.unknown()).max(CONFIG_LIMITS.vocabSize)])
        .optional(),
    })
    .passthrough(),
});

function makeHf(json: object, file: string): HfTokenizer {
  const checked = TokenizerJson.safeParse(json);
  if (!checked.success) {
    throw new SteerlabError("bad_file", "tokenizer.json has invalid token ids or structure", {
      file,
      problems: checked.error.issues.slice(0, 10).map((i) => `${i.path.join(".")}: ${i.message}`),
    });
  }
  try {
    // Config is passed empty: steerlab applies tokenizer_config.json itself (BOS/EOS, clean-up, templates).
    return new HfTokenizer(json, {});
  } catch (e) {
    throw new SteerlabError("bad_file", "tokenizer.json could not be loaded", {
      file,
      got: (e as Error).message,
      hint: "steerlab supports the tokenizer.json components @huggingface/tokenizers implements (BPE, Unigram, ...)",
    });
  }
}

/** A Tokenizer from a parsed tokenizer.json object and (optionally) tokenizer_config.json fields. */
export function tokenizerFromJson(
  obj: object,
  config: TokenizerConfig = {},
  file = "tokenizer.json",
): Tokenizer {
  const hf = makeHf(obj, file);
  const idOf = (content: string | null) => (content === null ? null : (hf.token_to_id(content) ?? null));
  const bosTokenId = idOf(tokenContent(config.bos_token));
  const eos = [idOf(tokenContent(config.eos_token))];
  const genEos = config.eos_token_id;
  for (const v of Array.isArray(genEos) ? genEos : [genEos]) if (typeof v === "number") eos.push(v);
  const flag = (v: unknown) => (typeof v === "boolean" ? v : null);
  let addBos = flag(config.add_bos_token);
  let addEos = flag(config.add_eos_token);
  if (addBos !== null || addEos !== null) {
    addBos ??= false;
    addEos ??= false;
  }
  return new JsonTokenizer(
    hf,
    {
      bosTokenId,
      eosTokenIds: [...new Set(eos.filter((x): x is number => x !== null))],
      chatTemplate: pickChatTemplate(config.chat_template),
      addBos,
      addEos,
      cleanUpSpaces: config.clean_up_tokenization_spaces === true,
    },
    file,
    obj,
  );
}

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  if (!existsSync(path)) return null;
  const text = readTextFile(path, "tokenizer file");
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not a JSON object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new SteerlabError("bad_file", "invalid JSON", { file: path, got: (e as Error).message });
  }
}

/**
 * A Hugging Face model directory's tokenizer files: tokenizer.json, plus tokenizer_config.json (bos/eos, add_bos,
 * chat_template), special_tokens_map.json and generation_config.json (eos ids) when present, merged into one
 * config. Returns null if the directory has no tokenizer.json. (The web lab sends these to the browser as they are.)
 */
export async function readHfTokenizerFiles(
  dir: string,
): Promise<{ json: Record<string, unknown>; config: TokenizerConfig; file: string } | null> {
  const file = join(dir, "tokenizer.json");
  const json = await readJson(file);
  if (!json) return null;
  const config: TokenizerConfig = {};
  const specialMap = await readJson(join(dir, "special_tokens_map.json"));
  for (const k of ["bos_token", "eos_token"] as const)
    if (specialMap?.[k] !== undefined) config[k] = specialMap[k];
  Object.assign(config, await readJson(join(dir, "tokenizer_config.json")));
  const gen = await readJson(join(dir, "generation_config.json"));
  if (gen?.eos_token_id !== undefined) config.eos_token_id = gen.eos_token_id;
  // Some models keep the chat template in its own file.
  const jinjaFile = join(dir, "chat_template.jinja");
  if (config.chat_template === undefined && existsSync(jinjaFile)) {
    config.chat_template = readTextFile(jinjaFile, "chat template file");
  }
  return { json, config, file };
}

/** Load a Hugging Face model directory's tokenizer (see readHfTokenizerFiles); null without tokenizer.json. */
export async function loadTokenizerFromHfDir(dir: string): Promise<Tokenizer | null> {
  const f = await readHfTokenizerFiles(dir);
  return f ? tokenizerFromJson(f.json, f.config, f.file) : null;
}

/** A Tokenizer from GGUF metadata (`tokenizer.ggml.*`), e.g. as parsed by src/io/gguf.ts. */
export function tokenizerFromGguf(
  metadata: Map<string, unknown> | Record<string, unknown>,
  file: string,
): Tokenizer {
  const parts = tokenizerJsonFromGguf(metadata, file);
  return new JsonTokenizer(
    makeHf(parts.json, file),
    {
      bosTokenId: parts.bosTokenId,
      eosTokenIds: parts.eosTokenIds,
      chatTemplate: parts.chatTemplate,
      addBos: null,
      addEos: null,
      cleanUpSpaces: false,
    },
    file,
    parts.json,
  );
}
