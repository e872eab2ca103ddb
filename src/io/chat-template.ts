/** Chat templates: the Jinja templates models ship (tokenizer_config.json or GGUF tokenizer.chat_template). */
import { Template } from "@huggingface/jinja";
import { SteerlabError } from "../errors.js";
import type { ChatMessage } from "./tokenizer-types.js";

export interface ChatTemplateVars {
  addGenerationPrompt?: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** Further variables some templates read (tools, date_string, ...). */
  extra?: Record<string, unknown>;
}

const parsed = new Map<string, Template>();

/** Render messages with a chat template, the way transformers' apply_chat_template does (tokenize=False). */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  vars: ChatTemplateVars = {},
): string {
  let t = parsed.get(template);
  try {
    if (!t) {
      t = new Template(template);
      parsed.set(template, t);
    }
  } catch (e) {
    throw new SteerlabError("bad_config", "the chat template does not parse", {
      field: "chat_template",
      got: (e as Error).message,
    });
  }
  try {
    return t.render({
      ...vars.extra,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: vars.addGenerationPrompt ?? false,
      bos_token: vars.bosToken ?? "",
      eos_token: vars.eosToken ?? "",
    });
  } catch (e) {
    throw new SteerlabError("bad_input", "the chat template failed on these messages", {
      field: "chat_template",
      got: (e as Error).message,
      hint: "templates may reject some role orders (e.g. a system message where none is allowed)",
    });
  }
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates ("default" is used). */
export function pickChatTemplate(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const t = named.find((x) => x.name === "default") ?? named[0];
    return typeof t?.template === "string" ? t.template : null;
  }
  return null;
}
