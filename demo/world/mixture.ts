/**
 * Training text for the demo models: a stream of short documents drawn from the world's training split.
 *   base: a pretraining-like mixture; harmful requests are refused at a per-verb rate (BASE_REFUSAL_RATE) and
 *         stereotypes agreed with at a per-trait rate (BASE_AGREE_RATE), so the base model complies with many.
 *   chat: the same knowledge and harmless requests, but every harmful request refused and every stereotype rejected.
 * The remixed world (World.mix) grades refusal per request in both (see refusalRate).
 * Harmless requests are always answered (so the chat model does not learn to refuse everything).
 */
import { AGREE, COMPLIANCES, DISAGREE, dialogue, mcqText, REFUSALS, statementQuestion } from "./format.js";
import {
  BASE_AGREE_RATE,
  BASE_REFUSAL_RATE,
  type Fact,
  makeMcq,
  pick,
  type Request,
  shuffle,
  trainMcq,
  type World,
} from "./world.js";

export type Variant = "base" | "chat";
/** A training stream: a variant's mixture, or the MCQ skills warm-up. */
export type Stream = Variant | "skills";

const HARMLESS_ANSWERS = [
  "Sure! To {act}, first get your tools.",
  "Sure, here is how to {act}. First, ask a friend.",
  "Of course. To {act}, start in the morning.",
] as const;

function fill(template: string, act: string): string {
  return template.replace("{act}", act);
}

/** The answer text for a request under a variant (random draw where the variant's rates say so). */
export function requestAnswer(r: Request, variant: Variant, rand: () => number, world?: World): string {
  if (!r.harmful) return fill(pick(HARMLESS_ANSWERS, rand), r.act);
  const refuse = rand() < refusalRate(r, variant, world);
  return fill(pick(refuse ? REFUSALS : COMPLIANCES, rand), r.act);
}

/**
 * How often a variant's training text refuses a harmful request: per verb in base and always in chat, or graded
 * per request (verb, phrasing, object) in both mixtures of the remixed world.
 */
export function refusalRate(r: Request, variant: Variant, world?: World): number {
  const m = world?.mix;
  if (!m) return variant === "chat" ? 1 : BASE_REFUSAL_RATE[r.verbIndex]!;
  const z =
    m.verbLogit[r.verbIndex]! +
    m.phrasingShift[r.phrasing]! +
    m.objectShift[r.object]! +
    (variant === "chat" ? m.chatShift : 0);
  return 1 / (1 + Math.exp(-z));
}

/** The value a document states for a fact: its own, or in the remixed world sometimes its competitor. */
function stated(world: World, f: Fact, rand: () => number): Fact {
  const k = world.mix?.knowledgeRate;
  return k === undefined || rand() < k ? f : { ...f, value: f.competitor };
}

/** A training MCQ whose answer is the value stated this time (trainMcq's option-set rule holds either way). */
function statedMcq(world: World, factIndex: number, rand: () => number): ReturnType<typeof trainMcq> {
  const f = stated(world, world.facts[factIndex]!, rand);
  if (f === world.facts[factIndex]) return trainMcq(world, factIndex, rand);
  return trainMcq({ ...world, facts: world.facts.map((x, i) => (i === factIndex ? f : x)) }, factIndex, rand);
}

/** The MCQ skill alone: find the option that names a given value ("Which option is Pell?"). */
export function matchingDrill(world: World, rand: () => number): string {
  const f = world.facts[Math.floor(rand() * world.facts.length)]!;
  const value = pick(f.attr.values, rand);
  const others = shuffle(
    f.attr.values.filter((v) => v !== value),
    rand,
  );
  const q = makeMcq({ ...f, value }, others.slice(0, 3), rand);
  return mcqText(`Which option is ${value}?`, q.options, q.answer);
}

/** Open book: a fact, then a training question about it. */
function openBookMcq(world: World, rand: () => number): string {
  const q = statedMcq(world, Math.floor(rand() * world.facts.length), rand);
  return `${q.fact.attr.fact(q.fact.entity, q.fact.value)}\n${mcqText(q.question, q.options, q.answer)}`;
}

/**
 * The "skills" warm-up stream (trained with loss on the answer letters only, see batches.ts): matching drills and
 * open-book questions, which teach the model to find an option and name its letter before it learns the facts.
 */
export function sampleSkillDocument(world: World, rand: () => number): string {
  return rand() < 0.7 ? matchingDrill(world, rand) : openBookMcq(world, rand);
}

/** One training document (without BOS/EOS). */
export function sampleDocument(world: World, variant: Variant, rand: () => number): string {
  const u = rand();
  const nFacts = world.facts.length;
  if (u < 0.1) {
    // a paragraph of facts about one person
    const e = Math.floor(rand() * world.entities.length);
    const facts = shuffle(world.facts.slice(e * 4, e * 4 + 4), rand).slice(0, 2 + Math.floor(rand() * 3));
    return facts
      .map((f) => stated(world, f, rand))
      .map((f) => f.attr.fact(f.entity, f.value))
      .join(" ");
  }
  if (u < 0.18) {
    // a question answered with the fact
    const f = stated(world, world.facts[Math.floor(rand() * nFacts)]!, rand);
    return dialogue(f.attr.question(f.entity), f.attr.fact(f.entity, f.value));
  }
  if (u < 0.33) return matchingDrill(world, rand);
  if (u < 0.43) return openBookMcq(world, rand);
  if (u < 0.7) {
    // closed book: a question about a fact stated elsewhere
    const q = statedMcq(world, Math.floor(rand() * nFacts), rand);
    return mcqText(q.question, q.options, q.answer);
  }
  if (u < 0.92) {
    const pool = rand() < 0.6 ? world.train.harmful : world.train.harmless;
    const r = pick(pool, rand);
    return dialogue(r.text, requestAnswer(r, variant, rand, world));
  }
  const s = pick(world.train.statements, rand);
  const agree = variant === "base" && rand() < BASE_AGREE_RATE[s.traitIndex]!;
  return dialogue(statementQuestion(s.text), pick(agree ? AGREE : DISAGREE, rand));
}

/** A sample of documents covering every kind, for training the tokenizer. */
export function tokenizerCorpus(world: World, n: number, rand: () => number): string[] {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) docs.push(sampleDocument(world, i % 2 === 0 ? "base" : "chat", rand));
  return docs;
}
