/**
 * Helpfulness of a multiple-choice answer, two ways:
 *  - generated (the paper's, DESIGN.md section 1): greedy generation of N tokens; P = the probability of the
 *    correct letter at the first generated token that is an answer letter, the max over the letter's token forms
 *    ("A", " A"), 0 when no letter is generated; accuracy = that generated letter is the correct one; P(A-D) as
 *    the authors' code computes it: the first generated step (the prompt's next-token distribution), max over
 *    forms per letter, renormalised over the letters.
 *  - next-token (cheaper, not the paper's): the distribution right after the prompt; P sums the letter's forms,
 *    P(A-D) renormalises over the letters, the predicted letter is the one with the most mass.
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

/** One question scored the paper's way from a greedy generation (see the top of this file). */
export interface GeneratedAnswerItem {
  /** P(correct letter) at the first generated letter (max over its forms); 0 when no letter was generated. */
  readonly pFull: number;
  /** P(correct | letters) at the first generated step, max over forms per letter. */
  readonly pRelative: number;
  /** The first generated answer letter, or null when none. */
  readonly predicted: string | null;
  readonly correct: boolean;
  /** Index of the generated token that is the letter (-1 when none). */
  readonly step: number;
}

function letterOfId(letters: LetterIds): Map<number, string> {
  const m = new Map<number, string>();
  for (const [L, ids] of Object.entries(letters)) for (const id of ids) m.set(id, L);
  return m;
}

/** max over a letter's token forms of the probability in `lp` (log-probabilities). */
function maxForm(lp: ArrayLike<number>, ids: readonly number[]): number {
  let m = 0;
  for (const id of ids) m = Math.max(m, Math.exp(lp[id]!));
  return m;
}

/**
 * Score a greedy generation: `steps[k]` is the logits row the k-th generated token `tokens[k]` was chosen from
 * (only the rows up to the first letter are read; steps[0] is always needed for P(A-D)).
 */
export function scoreGeneratedAnswer(
  steps: readonly ArrayLike<number>[],
  tokens: readonly number[],
  letters: LetterIds,
  correctLetter: string,
): GeneratedAnswerItem {
  const names = Object.keys(letters);
  if (!names.includes(correctLetter))
    throw new SteerlabError("bad_input", "correct answer is not one of the letters", {
      field: "correct",
      expected: names.join(", "),
      got: correctLetter,
    });
  if (steps.length === 0 || steps.length < Math.min(tokens.length, 1))
    throw new SteerlabError("bad_input", "a generated answer needs the logits of its first step", {
      field: "steps",
    });
  const lp0 = logSoftmax(steps[0]!);
  const forms = names.map((L) => maxForm(lp0, letters[L]!));
  const total = forms.reduce((a, b) => a + b, 0);
  const pRelative = total > 0 ? forms[names.indexOf(correctLetter)]! / total : 0;
  const of = letterOfId(letters);
  const step = tokens.findIndex((t) => of.has(t));
  if (step < 0) return { pFull: 0, pRelative, predicted: null, correct: false, step: -1 };
  const row = steps[step];
  if (!row)
    throw new SteerlabError("bad_input", "no logits for the generated letter's step", {
      field: "steps",
      got: `${steps.length} steps, letter at ${step}`,
    });
  const predicted = of.get(tokens[step]!)!;
  return {
    pFull: maxForm(logSoftmax(row), letters[correctLetter]!),
    pRelative,
    predicted,
    correct: predicted === correctLetter,
    step,
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
