/**
 * Helpfulness from the next-token distribution at the answer position of a multiple-choice prompt:
 * full-vocabulary P(correct letter) summing every token form of the letter (e.g. "A" and " A", ids given by
 * the caller), the probability renormalised over the answer letters (chance 1/k), and accuracy.
 */
import { SteerlabError } from "../errors.js";
import { logSoftmax } from "../model/sampling.js";
import { type Summary, summarize } from "./score-aggregate.js";

export { logSoftmax };

/** Token ids of each answer letter, e.g. { A: [319, 29909], B: [...], ... } ("A" and " A"). */
export type LetterIds = Readonly<Record<string, readonly number[]>>;

export interface HelpfulnessItem {
  /** Full-vocabulary probability of the correct letter (all its token forms). */
  readonly pFull: number;
  /** Probability of the correct letter renormalised over the letters. */
  readonly pRelative: number;
  /** The letter with the highest mass. */
  readonly predicted: string;
  readonly correct: boolean;
  /** Mass of each letter over the full vocabulary. */
  readonly letterMass: Readonly<Record<string, number>>;
}

export interface HelpfulnessSummary {
  readonly pFull: Summary;
  readonly pRelative: Summary;
  readonly accuracy: Summary;
}

/**
 * Score one question. `dist` is the next-token distribution [vocab] as log-probabilities (default) or raw
 * logits (`input: "logits"`, normalised here). Duplicate ids within a letter are counted once.
 */
export function scoreHelpfulness(
  dist: ArrayLike<number>,
  letters: LetterIds,
  correctLetter: string,
  o: { input?: "logprobs" | "logits" } = {},
): HelpfulnessItem {
  const names = Object.keys(letters);
  if (!names.includes(correctLetter)) {
    throw new SteerlabError("bad_input", "correct answer is not one of the letters", {
      field: "correct",
      expected: names.join(", "),
      got: correctLetter,
    });
  }
  const lp = o.input === "logits" ? logSoftmax(dist) : dist;
  const letterMass: Record<string, number> = {};
  const seen = new Map<number, string>();
  for (const L of names) {
    let mass = 0;
    for (const id of new Set(letters[L]!)) {
      if (!Number.isInteger(id) || id < 0 || id >= lp.length) {
        throw new SteerlabError("bad_input", "letter token id out of vocabulary", {
          field: `letters.${L}`,
          got: String(id),
          expected: `0..${lp.length - 1}`,
        });
      }
      const other = seen.get(id);
      if (other !== undefined && other !== L) {
        throw new SteerlabError("bad_input", "two letters share a token id", {
          field: `letters.${L}`,
          got: `${id} also in ${other}`,
        });
      }
      seen.set(id, L);
      mass += Math.exp(lp[id]!);
    }
    letterMass[L] = mass;
  }
  const total = names.reduce((s, L) => s + letterMass[L]!, 0);
  const predicted = names.reduce((b, L) => (letterMass[L]! > letterMass[b]! ? L : b), names[0]!);
  const pFull = letterMass[correctLetter]!;
  return {
    pFull,
    pRelative: total > 0 ? pFull / total : 1 / names.length,
    predicted,
    correct: predicted === correctLetter,
    letterMass,
  };
}

/** Mean, std, standard error and n of P(correct), P(correct | letters) and accuracy over questions. */
export function aggregateHelpfulness(items: readonly HelpfulnessItem[]): HelpfulnessSummary {
  return {
    pFull: summarize(items.map((i) => i.pFull)),
    pRelative: summarize(items.map((i) => i.pRelative)),
    accuracy: summarize(items.map((i) => (i.correct ? 1 : 0))),
  };
}
