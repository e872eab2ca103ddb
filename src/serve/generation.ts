/**
 * One request's generation through the scheduler: its steering and monitor hooks (for its row only), sampling,
 * stops and optional logprobs, delivered as an async stream of tokens plus a summary. Both the chat and the
 * completions routes use it; they only differ in how they format.
 */
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { HookBinding } from "../model/engine.js";
import type { FinishReason } from "../model/generate.js";
import { nextTokenLogprobs } from "../model/logprobs.js";
import { projectionMonitor } from "../steer/monitor.js";
import type { PreparedPrompt } from "../steer/steer-call.js";
import type { SteeringVector } from "../steer/vector.js";
import { ApiError } from "./api-error.js";
import { promptEntry, type TokenLogprob, tokenLogprob } from "./openai.js";
import type { Scheduler } from "./scheduler.js";
import { planHooks, type SteeringPlan } from "./steering.js";

export interface GenRequest {
  prompt: PreparedPrompt;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop: string[];
  /** Keep generating past end-of-sequence tokens. */
  ignoreEos: boolean;
  plan: SteeringPlan | null;
  monitor: { vector: SteeringVector; layers: number[] } | null;
  /** Top alternatives per token; null = no logprobs. */
  topLogprobs: number | null;
  /** Score the prompt's tokens too (completions with echo + logprobs). */
  promptLogprobs: boolean;
}

export interface GenToken {
  id: number;
  /** The text this token releases (may be "" while a character or a possible stop string is pending). */
  text: string;
  logprob?: TokenLogprob;
  /** layer -> projection on the monitored vector at the position that chose this token. */
  monitor?: Record<string, number>;
  finishReason?: FinishReason;
}

export interface GenSummary {
  text: string;
  completionTokens: number;
  finishReason: FinishReason;
  /** Per prompt token (the first has none). */
  promptLogprobs?: (TokenLogprob | null)[];
}

export interface Generation {
  tokens: AsyncIterable<GenToken>;
  done: Promise<GenSummary>;
  /** The prompt's logprobs once scored (they are, before the first token arrives). */
  promptLogprobs(): (TokenLogprob | null)[] | undefined;
}

/** Queue a request; tokens arrive as the batch it joins decodes them. */
export function startGeneration(
  scheduler: Scheduler,
  tok: Tokenizer,
  nLayers: number,
  req: GenRequest,
  signal: AbortSignal,
): Generation {
  const hooks: HookBinding[] = req.plan ? planHooks(req.plan, tok, req.prompt, nLayers) : [];
  const monitor = req.monitor ? projectionMonitor(req.monitor.vector, req.monitor.layers) : null;
  const buffer: GenToken[] = [];
  let wake: (() => void) | null = null;
  let finished = false;
  let failure: unknown = null;
  let text = "";
  let count = 0;
  let reason: FinishReason = "aborted";
  let promptLogprobs: (TokenLogprob | null)[] | undefined;
  const notify = () => {
    wake?.();
    wake = null;
  };
  let resolveDone!: (s: GenSummary) => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<GenSummary>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => {}); // the route awaits it; never an unhandled rejection when the client went away

  scheduler.submit({
    row: {
      prompt: req.prompt.ids,
      maxNewTokens: Math.max(1, req.maxTokens),
      stopStrings: req.stop,
      ...(req.ignoreEos ? { stopTokens: [] } : {}),
      temperature: req.temperature,
      topP: req.topP,
      topK: req.topK,
      seed: req.seed,
      hooks: [...hooks, ...(monitor?.hooks ?? [])],
    },
    promptOnly: req.maxTokens === 0,
    before: req.promptLogprobs
      ? async () => {
          const dists = await nextTokenLogprobs(scheduler.engineOf(), req.prompt.ids, {
            positions: "all",
            hooks,
            top: req.topLogprobs ?? 0,
          });
          const ids = req.prompt.ids;
          promptLogprobs = ids.map((id, i) => (i === 0 ? null : promptEntry(tok, dists[i - 1]!, id)));
        }
      : undefined,
    onToken: (e) => {
      if (e.finishReason) reason = e.finishReason;
      // A stop token ends the row but is not part of the completion.
      if (e.finishReason === "stop_token") {
        buffer.push({ id: e.tokenId, text: e.text, finishReason: e.finishReason });
      } else {
        count++;
        const t: GenToken = { id: e.tokenId, text: e.text };
        if (req.topLogprobs !== null) t.logprob = tokenLogprob(tok, e.logits, e.tokenId, req.topLogprobs);
        if (monitor) t.monitor = Object.fromEntries([...monitor.latest].map(([l, v]) => [String(l), v]));
        if (e.finishReason) t.finishReason = e.finishReason;
        buffer.push(t);
      }
      text += e.text;
      notify();
    },
    onEnd: (error) => {
      if (error !== undefined) failure = error;
      if (req.maxTokens === 0 && error === undefined) reason = "length";
      finished = true;
      notify();
      if (failure !== null) rejectDone(failure);
      else if (signal.aborted && reason === "aborted")
        rejectDone(new ApiError(400, "the request was cancelled"));
      else resolveDone({ text, completionTokens: count, finishReason: reason, promptLogprobs });
    },
    signal,
  });

  const tokens: AsyncIterable<GenToken> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (buffer.length) yield buffer.shift()!;
        if (finished) {
          if (failure !== null) throw failure;
          return;
        }
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    },
  };
  return { tokens, done, promptLogprobs: () => promptLogprobs };
}
