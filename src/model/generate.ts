/**
 * Text generation against any Engine: encode, left-pad the batch, prefill the prompts into a KV cache, then
 * decode one token per row per step until each row hits a stop token, a stop string or its token budget.
 *
 * Hooks are per call: `hooks` apply at every step, `hooksForStep(step)` may add different ones per step. Hooks
 * see absolute positions (HookContext.positions), so "generated tokens only" is `pos >= promptLengths[row]`,
 * the same with or without the cache. Rows that have finished keep their slot with mask 0 (positions -1).
 */
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Engine, HookBinding } from "./engine.js";
import { rowHooks } from "./row-hooks.js";
import { makeSampler, type Sampler, type SamplingOptions } from "./sampling.js";

/** A prompt: text (encoded with the tokenizer) or token ids used as they are. */
export type Prompt = string | readonly number[];

export interface GenerateStep {
  /** 0 = the prefill call over the prompts, then 1, 2, ... one call per generated token fed back. */
  step: number;
  /** Real prompt tokens per row: a token at position p of row b was generated iff p >= promptLengths[b]. */
  promptLengths: readonly number[];
}

export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate per row (default 64); also capped by the model's context. */
  maxNewTokens?: number;
  /** Stop a row when its generated text contains one of these; the text is cut before it. */
  stopStrings?: readonly string[];
  /** Token ids that end a row (not included in the output). Default: the tokenizer's and the config's EOS ids. */
  stopTokens?: readonly number[];
  /** Hooks applied at every step of this call. */
  hooks?: readonly HookBinding[];
  /** Extra hooks chosen per step (e.g. steering only while decoding). */
  hooksForStep?: (step: GenerateStep) => readonly HookBinding[];
  /** Passed to tokenizer.encode for text prompts (default true: add BOS as the model expects). */
  addSpecialTokens?: boolean;
  /** Stops every row at the next step with finishReason "aborted". */
  signal?: AbortSignal;
  /**
   * Called for every generated token with the logits [vocab] it was chosen from (a view valid only during the
   * call): `index` is its position among the row's generated tokens (0 = the first token after the prompt).
   */
  onLogits?: (e: { row: number; index: number; tokenId: number; logits: Float32Array }) => void;
}

/**
 * One row of a batch with options of its own (a server request): its own sampler, budget, stop rules, steering
 * and cancellation, so that rows of one batch never influence each other.
 */
export interface RowRequest extends SamplingOptions {
  prompt: Prompt;
  maxNewTokens?: number;
  stopStrings?: readonly string[];
  stopTokens?: readonly number[];
  /** Hooks for this row only, written as for a batch of one (row 0); they never see other rows. */
  hooks?: readonly HookBinding[];
  /** Ends this row at the next step with finishReason "aborted"; the other rows go on. */
  signal?: AbortSignal;
}

export type FinishReason = "stop_token" | "stop_string" | "length" | "aborted";

export interface GenerationResult {
  promptIds: number[];
  /** Generated token ids, without the stop token. */
  ids: number[];
  /** Decoded generated text (special tokens skipped), cut before a stop string. */
  text: string;
  finishReason: FinishReason;
  stopTokenId?: number;
  stopString?: string;
}

/** One generated token of one row and the text it adds (text may be "" while a multi-byte char or a possible stop string is pending). */
export interface GenerateEvent {
  row: number;
  tokenId: number;
  text: string;
  /** Set on the row's last event. */
  finishReason?: FinishReason;
  /** The row's next-token logits this token was chosen from, [V] (a view: valid until the next event is pulled). */
  logits: Float32Array;
}

function encodePrompt(tokenizer: Tokenizer | null, p: Prompt, addSpecial: boolean, i: number): number[] {
  if (typeof p !== "string") return [...p];
  if (!tokenizer) {
    throw new SteerlabError("bad_input", "a text prompt needs a tokenizer", {
      field: `prompts[${i}]`,
      hint: "pass token ids or a tokenizer",
    });
  }
  return tokenizer.encode(p, { addSpecialTokens: addSpecial });
}

/** Per-row decoding state: what has been generated and how much of its text was handed out. */
interface RowState {
  result: GenerationResult;
  budget: number;
  emitted: number;
  done: boolean;
}

/** Length of the longest suffix of `s` (ending at `end`) that is a proper prefix of a stop string. */
function pendingStopPrefix(s: string, end: number, stops: readonly string[]): number {
  let best = 0;
  for (const stop of stops) {
    for (let L = Math.min(stop.length - 1, end); L > best; L--) {
      if (s.startsWith(stop.slice(0, L), end - L)) {
        best = L;
        break;
      }
    }
  }
  return best;
}

/**
 * Feed one new token to a row: update ids and text, detect stop strings and the budget, and return the text this
 * token releases (held back: an incomplete UTF-8 character, or a tail that may grow into a stop string).
 */
function accept(
  row: RowState,
  tokenId: number,
  tokenizer: Tokenizer | null,
  stops: readonly string[],
  stopTokens: ReadonlySet<number>,
): string {
  const r = row.result;
  if (stopTokens.has(tokenId)) {
    r.finishReason = "stop_token";
    r.stopTokenId = tokenId;
    row.done = true;
  } else {
    r.ids.push(tokenId);
  }
  const full = tokenizer ? tokenizer.decode(r.ids, { skipSpecialTokens: true }) : "";
  const from = Math.max(0, row.emitted - Math.max(0, ...stops.map((s) => s.length)));
  let cut = -1;
  for (const s of stops) {
    const i = full.indexOf(s, from);
    if (i >= 0 && (cut < 0 || i < cut)) {
      cut = i;
      r.stopString = s;
    }
  }
  if (cut >= 0) {
    r.finishReason = "stop_string";
    row.done = true;
  } else if (!row.done && r.ids.length >= row.budget) {
    r.finishReason = "length";
    row.done = true;
  }
  let end: number;
  if (row.done) {
    end = cut >= 0 ? Math.max(cut, row.emitted) : full.length;
  } else {
    end = full.length;
    while (end > row.emitted && full.charCodeAt(end - 1) === 0xfffd) end--; // incomplete character
    end -= pendingStopPrefix(full, end, stops);
  }
  let delta = "";
  if (end > row.emitted) {
    delta = full.slice(row.emitted, end);
    row.emitted = end;
  }
  r.text = full.slice(0, row.emitted);
  return delta;
}

/** A row as the decoding loop sees it: the options of RowRequest resolved. */
interface RowSpec {
  prompt: Prompt;
  sampler: Sampler;
  maxNew: number;
  stops: readonly string[];
  stopTokens: ReadonlySet<number> | null;
  hooks: readonly HookBinding[];
  signal?: AbortSignal;
}

function checkRowOptions(stops: readonly string[], maxNew: number, tokenizer: Tokenizer | null): void {
  if (stops.some((s) => s.length === 0)) {
    throw new SteerlabError("bad_input", "empty stop string", { field: "stopStrings" });
  }
  if (stops.length && !tokenizer) {
    throw new SteerlabError("bad_input", "stop strings need a tokenizer", { field: "stopStrings" });
  }
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new SteerlabError("bad_input", "maxNewTokens must be a positive integer", {
      field: "maxNewTokens",
      got: String(maxNew),
    });
  }
}

/** Every row shares the call's options (and one sampler, drawn in row order, so batches are reproducible). */
function sharedRows(
  prompts: readonly Prompt[],
  opts: GenerateOptions,
  tokenizer: Tokenizer | null,
): RowSpec[] {
  const stops = opts.stopStrings ?? [];
  const maxNew = opts.maxNewTokens ?? 64;
  checkRowOptions(stops, maxNew, tokenizer);
  const sampler = makeSampler(opts);
  const stopTokens = opts.stopTokens ? new Set(opts.stopTokens) : null;
  return prompts.map((prompt) => ({ prompt, sampler, maxNew, stops, stopTokens, hooks: [] }));
}

/** Each row with its own options; its hooks are scoped to its row. */
function ownRows(rows: readonly RowRequest[], tokenizer: Tokenizer | null): RowSpec[] {
  return rows.map((r, b) => {
    const stops = r.stopStrings ?? [];
    const maxNew = r.maxNewTokens ?? 64;
    checkRowOptions(stops, maxNew, tokenizer);
    return {
      prompt: r.prompt,
      sampler: makeSampler(r),
      maxNew,
      stops,
      stopTokens: r.stopTokens ? new Set(r.stopTokens) : null,
      hooks: rowHooks(r.hooks ?? [], b),
      signal: r.signal,
    };
  });
}

/**
 * The decoding loop shared by every entry point: yields one event per generated token and row, and fills
 * `results` (one per prompt, in order).
 */
async function* decodeLoop(
  engine: Engine,
  tokenizer: Tokenizer | null,
  specs: readonly RowSpec[],
  opts: GenerateOptions,
  results: GenerationResult[],
): AsyncGenerator<GenerateEvent> {
  const c = engine.config;
  const B = specs.length;
  if (B === 0) return;
  const defaultStops = new Set([...(tokenizer?.eosTokenIds ?? []), ...c.eosTokenIds]);
  // Models may pad the embedding past the tokenizer's vocabulary (e.g. Qwen2): never sample an id it can't decode.
  const sampleable = Math.min(c.vocabSize, tokenizer?.vocabSize ?? c.vocabSize);

  const promptIds = specs.map((s, i) => encodePrompt(tokenizer, s.prompt, opts.addSpecialTokens ?? true, i));
  const rows: RowState[] = promptIds.map((ids, i) => {
    if (ids.length === 0 || ids.length >= c.maxPositions) {
      throw new SteerlabError("bad_input", "prompt length out of range", {
        field: `prompts[${i}]`,
        expected: `1 to ${c.maxPositions - 1} tokens`,
        got: `${ids.length} tokens`,
      });
    }
    const result: GenerationResult = { promptIds: ids, ids: [], text: "", finishReason: "length" };
    results.push(result);
    return {
      result,
      budget: Math.min(specs[i]!.maxNew, c.maxPositions - ids.length),
      emitted: 0,
      done: false,
    };
  });
  const promptLengths = promptIds.map((p) => p.length);
  const rowBindings = specs.flatMap((s) => s.hooks);
  const hooksFor = (step: number): HookBinding[] => [
    ...(opts.hooks ?? []),
    ...rowBindings,
    ...(opts.hooksForStep?.({ step, promptLengths }) ?? []),
  ];
  const aborted = (b: number) => opts.signal?.aborted === true || specs[b]!.signal?.aborted === true;

  // Prefill: prompts left-padded to a common length T.
  const T = Math.max(...promptLengths);
  const ids = promptIds.map((p) => [...Array<number>(T - p.length).fill(0), ...p]); // [B, T]
  const mask = promptIds.map((p) => [
    ...Array<number>(T - p.length).fill(0),
    ...Array<number>(p.length).fill(1),
  ]);
  const cache = engine.newCache(B);
  let out = await engine.forward({ ids, mask }, { cache, hooks: hooksFor(0), logits: "last" });

  for (let step = 1; ; step++) {
    const next = new Array<number>(B).fill(0); // [B] token fed back (0 for finished rows)
    const live = new Array<number>(B).fill(0); // [B] mask of this step
    for (let b = 0; b < B; b++) {
      const row = rows[b]!;
      if (row.done) continue;
      const spec = specs[b]!;
      const logits = out.logits.subarray(b * out.vocab, (b + 1) * out.vocab);
      const tok = spec.sampler.next(logits, 0, sampleable);
      opts.onLogits?.({ row: b, index: row.result.ids.length, tokenId: tok, logits });
      const text = accept(row, tok, tokenizer, spec.stops, spec.stopTokens ?? defaultStops);
      yield row.done
        ? { row: b, tokenId: tok, text, finishReason: row.result.finishReason, logits }
        : { row: b, tokenId: tok, text, logits };
      if (!row.done && aborted(b)) {
        row.result.finishReason = "aborted";
        row.done = true;
      }
      if (!row.done) {
        next[b] = tok;
        live[b] = 1;
      }
    }
    if (!live.includes(1)) return;
    out = await engine.forward(
      { ids: next.map((t) => [t]), mask: live.map((m) => [m]) },
      { cache, hooks: hooksFor(step), logits: "last" },
    );
  }
}

/** Generate from several prompts at once (left-padded batch); one result per prompt, in order. */
export async function generateBatch(
  engine: Engine,
  tokenizer: Tokenizer | null,
  prompts: readonly Prompt[],
  opts: GenerateOptions = {},
): Promise<GenerationResult[]> {
  const results: GenerationResult[] = [];
  for await (const _ of decodeLoop(engine, tokenizer, sharedRows(prompts, opts, tokenizer), opts, results)) {
    // the events only matter to streaming callers
  }
  return results;
}

/** Generate from one prompt (text or token ids). */
export async function generate(
  engine: Engine,
  tokenizer: Tokenizer | null,
  prompt: Prompt,
  opts: GenerateOptions = {},
): Promise<GenerationResult> {
  return (await generateBatch(engine, tokenizer, [prompt], opts))[0]!;
}

/** Stream one prompt's tokens as they are decoded: each event is a token id and the text it adds. */
export async function* streamGenerate(
  engine: Engine,
  tokenizer: Tokenizer | null,
  prompt: Prompt,
  opts: GenerateOptions = {},
): AsyncGenerator<{ tokenId: number; text: string; finishReason?: FinishReason }> {
  for await (const e of decodeLoop(engine, tokenizer, sharedRows([prompt], opts, tokenizer), opts, [])) {
    yield e.finishReason
      ? { tokenId: e.tokenId, text: e.text, finishReason: e.finishReason }
      : { tokenId: e.tokenId, text: e.text };
  }
}

/** Stream a batch: events of all rows interleaved, step by step (row order within a step). */
export function streamGenerateBatch(
  engine: Engine,
  tokenizer: Tokenizer | null,
  prompts: readonly Prompt[],
  opts: GenerateOptions = {},
): AsyncGenerator<GenerateEvent> {
  return decodeLoop(engine, tokenizer, sharedRows(prompts, opts, tokenizer), opts, []);
}

/**
 * Stream a batch whose rows each have their own options (sampling, seed, budget, stops, hooks, cancellation):
 * what a server batching independent requests into one forward needs. Each row equals its solo run.
 * `shared` applies to every row (hooks here see the whole batch; onLogits gets each row's logits).
 */
export function streamGenerateRows(
  engine: Engine,
  tokenizer: Tokenizer | null,
  rows: readonly RowRequest[],
  shared: Pick<GenerateOptions, "hooks" | "addSpecialTokens" | "signal" | "onLogits"> = {},
): AsyncGenerator<GenerateEvent> {
  return decodeLoop(engine, tokenizer, ownRows(rows, tokenizer), shared, []);
}
