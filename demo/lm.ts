/**
 * The demo trainer's view of a language model: a config, its parameters, a tokenizer, and a next-token forward
 * (the training forward, run without the backward). Used to batch training text and to evaluate the models.
 */
import type { Tokenizer } from "../src/io/tokenizer-types.js";
import type { ModelConfig } from "../src/model/config.js";
import { argmax, logSoftmax } from "../src/model/sampling.js";
import type { LlamaTrainer, Params } from "../src/train/llama.js";

export interface DemoLm {
  config: ModelConfig;
  params: Params;
  tokenizer: Tokenizer;
  trainer: LlamaTrainer;
  bos: number;
  eos: number;
  pad: number;
}

/** BOS + the text's tokens (no EOS): what the model sees when asked to continue `text`. */
export function promptIds(lm: DemoLm, text: string): number[] {
  return [lm.bos, ...lm.tokenizer.encode(text, { addSpecialTokens: false })];
}

/**
 * Next-token logits after each prompt: prompts are right-padded into one batch (causal attention makes padding
 * after a prompt harmless) and the logits at each prompt's last token are returned.   out[i] [V]
 */
export async function nextLogits(lm: DemoLm, prompts: readonly number[][]): Promise<Float32Array[]> {
  const V = lm.config.vocabSize;
  const T = Math.max(...prompts.map((p) => p.length));
  const tokens = new Int32Array(prompts.length * T).fill(lm.pad); // [B, T]
  prompts.forEach((p, b) => {
    tokens.set(p, b * T);
  });
  const acts = await lm.trainer.forward(lm.params, tokens, prompts.length, T);
  return prompts.map((p, b) => {
    const o = (b * T + p.length - 1) * V;
    return acts.logits.slice(o, o + V);
  });
}

/** Greedy continuation of each prompt by up to `maxNew` tokens (stops at EOS). Returns the new text. */
export async function greedy(
  lm: DemoLm,
  texts: readonly string[],
  maxNew: number,
  chunk = 64,
): Promise<string[]> {
  const out: string[] = [];
  for (let s = 0; s < texts.length; s += chunk) {
    const ids = texts.slice(s, s + chunk).map((t) => promptIds(lm, t));
    const gen: number[][] = ids.map(() => []);
    const done = ids.map(() => false);
    for (let step = 0; step < maxNew && done.some((d) => !d); step++) {
      const logits = await nextLogits(lm, ids);
      logits.forEach((l, i) => {
        if (done[i]) return;
        const next = argmax(l);
        if (next === lm.eos) done[i] = true;
        else {
          gen[i]!.push(next);
          ids[i]!.push(next);
        }
      });
    }
    for (const g of gen) out.push(lm.tokenizer.decode(g, { skipSpecialTokens: true }));
  }
  return out;
}

/** Softmax of a logits row: exp of the library's log-softmax. */
export function softmax(x: Float32Array): Float64Array {
  return logSoftmax(x).map(Math.exp);
}
