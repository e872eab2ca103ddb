/**
 * Chat templates: the Jinja templates models ship (tokenizer_config.json or GGUF tokenizer.chat_template).
 *
 * A template is code from the model file, so its evaluation is bounded: a budget of interpreter steps and of
 * elements made by range() (`range(10**9)` would allocate the whole list first), a size limit on every string it
 * builds, and a wall-clock deadline. A real template renders a conversation in a few thousand steps.
 */
import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { SteerlabError } from "../errors.js";
import type { ChatMessage } from "./tokenizer-types.js";

export interface ChatTemplateVars {
  addGenerationPrompt?: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** Further variables some templates read (tools, date_string, ...). */
  extra?: Record<string, unknown>;
  /** The file the template came from, named in errors. */
  file?: string;
}

const parsed = new Map<string, Template>();

/** Limits of one render (see the file comment). */
export const TEMPLATE_LIMITS = { steps: 5_000_000, rangeItems: 1_000_000, chars: 1 << 22, ms: 5_000 };

class TemplateBudgetError extends Error {}

/** The part of the library's Interpreter used here (its .d.ts imports "./runtime", which NodeNext cannot resolve). */
interface RuntimeValue {
  value: unknown;
}
type InterpreterClass = new (
  env: InstanceType<typeof Environment>,
) => {
  evaluate(statement: unknown, env: unknown): RuntimeValue;
  run(program: unknown): RuntimeValue;
};

/** The library's interpreter, counting every evaluated node and refusing oversized strings. */
class BoundedInterpreter extends (Interpreter as unknown as InterpreterClass) {
  private steps = 0;
  private readonly deadline = Date.now() + TEMPLATE_LIMITS.ms;

  override evaluate(statement: unknown, env: unknown): RuntimeValue {
    if (++this.steps > TEMPLATE_LIMITS.steps)
      throw new TemplateBudgetError(`more than ${TEMPLATE_LIMITS.steps} evaluation steps`);
    if (this.steps % 4096 === 0 && Date.now() > this.deadline)
      throw new TemplateBudgetError(`rendering took more than ${TEMPLATE_LIMITS.ms} ms`);
    const v = super.evaluate(statement, env);
    if (typeof v.value === "string" && v.value.length > TEMPLATE_LIMITS.chars)
      throw new TemplateBudgetError(`a string longer than ${TEMPLATE_LIMITS.chars} characters`);
    return v;
  }
}

/** strftime_now as transformers provides it (the directives chat templates use). */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  const month = (style: "long" | "short") => new Intl.DateTimeFormat("en-US", { month: style }).format(d);
  return String(format).replace(/%[YmdbBHM%]/g, (t) => {
    switch (t) {
      case "%Y":
        return String(d.getFullYear());
      case "%m":
        return pad(d.getMonth() + 1);
      case "%d":
        return pad(d.getDate());
      case "%b":
        return month("short");
      case "%B":
        return month("long");
      case "%H":
        return pad(d.getHours());
      case "%M":
        return pad(d.getMinutes());
      default:
        return "%";
    }
  });
}

/** Render a parsed template with the library's globals, except a range() that counts what it makes. */
function renderBounded(t: Template, items: Record<string, unknown>): string {
  let made = 0;
  const range = (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error("range() step must not be zero");
    const n = Math.max(0, Math.ceil((stop - start) / step));
    made += n;
    if (!Number.isFinite(n) || made > TEMPLATE_LIMITS.rangeItems)
      throw new TemplateBudgetError(`range() made more than ${TEMPLATE_LIMITS.rangeItems} items`);
    return Array.from({ length: n }, (_, i) => start + i * step);
  };
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    raise_exception: (msg: unknown) => {
      throw new Error(String(msg));
    },
    range,
    strftime_now: strftimeNow,
    ...items,
  };
  for (const [k, v] of Object.entries(globals)) env.set(k, v);
  return String(new BoundedInterpreter(env).run(t.parsed).value);
}

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
      ...(vars.file ? { file: vars.file } : {}),
      field: "chat_template",
      got: (e as Error).message,
    });
  }
  try {
    return renderBounded(t, {
      ...vars.extra,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: vars.addGenerationPrompt ?? false,
      bos_token: vars.bosToken ?? "",
      eos_token: vars.eosToken ?? "",
    });
  } catch (e) {
    if (e instanceof TemplateBudgetError || e instanceof RangeError) {
      throw new SteerlabError("bad_config", `the chat template ran away: ${e.message}`, {
        ...(vars.file ? { file: vars.file } : {}),
        field: "chat_template",
        expected: `at most ${TEMPLATE_LIMITS.steps} steps, ${TEMPLATE_LIMITS.rangeItems} range() items, ${TEMPLATE_LIMITS.chars}-character strings, ${TEMPLATE_LIMITS.ms} ms`,
        hint: "the template loops without end or builds huge strings: fix it or use another template",
      });
    }
    throw new SteerlabError("bad_input", "the chat template failed on these messages", {
      ...(vars.file ? { file: vars.file } : {}),
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
