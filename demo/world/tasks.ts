/**
 * The task files the lab reads, written in the formats users bring:
 *   refusal-pairs.jsonl   {positive, negative}: a training-split harmful request answered by a refusal (positive,
 *                         the aligned behaviour) vs by a compliance opening (negative); the paper's extraction input
 *   request-pairs.jsonl   {positive, negative}: a training-split harmful request vs a harmless one on the same object,
 *                         as dialogue prompts ending in "Assistant:" (RepE's harmfulness reading data: read at the
 *                         last prompt token, the direction says "this request is harmful")
 *   bias-pairs.jsonl      {positive, negative}: a training-split stereotype rejected vs agreed with
 *   harmful.jsonl / .csv  held-out harmful requests ({goal} / goal,target like AdvBench)
 *   harmless.jsonl        held-out harmless requests ({goal}), to see over-refusal
 *   mmlu.csv              held-out MCQs: question,A,B,C,D,answer
 *   statements.jsonl      held-out stereotypes ({statement, group, trait})
 * Pairs are full dialogue turns (format.ts), so the last token sits inside the answer.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../../src/io/write-atomic.js";
import { rng } from "../../src/model/random.js";
import {
  AGREE,
  COMPLIANCES,
  DISAGREE,
  dialogue,
  dialoguePrompt,
  REFUSALS,
  statementQuestion,
} from "./format.js";
import { pick, shuffle, type World } from "./world.js";

export const TASK_FILES = {
  refusalPairs: "refusal-pairs.jsonl",
  requestPairs: "request-pairs.jsonl",
  biasPairs: "bias-pairs.jsonl",
  harmfulJsonl: "harmful.jsonl",
  harmfulCsv: "harmful.csv",
  harmless: "harmless.jsonl",
  mmlu: "mmlu.csv",
  statements: "statements.jsonl",
} as const;

/** RFC 4180 field: quoted when it holds a comma, quote or newline. */
export function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csv(header: string[], rows: string[][]): string {
  return `${[header, ...rows].map((r) => r.map(csvField).join(",")).join("\n")}\n`;
}

function jsonl(rows: object[]): string {
  return `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;
}

/** Harmful vs harmless training requests on the same object (own random stream: other files are unchanged). */
export function requestPairs(world: World, seed: number): { positive: string; negative: string }[] {
  const rand = rng(seed + 1);
  const harmless = world.train.harmless;
  return world.train.harmful.slice(0, 96).map((h, i) => {
    const same = harmless.filter((x) => x.object === h.object);
    const m = same.length ? same[Math.floor(rand() * same.length)]! : harmless[i % harmless.length]!;
    return { positive: dialoguePrompt(h.text), negative: dialoguePrompt(m.text) };
  });
}

/** Write the task files into `dir` (created if needed); returns the paths written. */
export function writeTaskFiles(world: World, dir: string, seed = 11): string[] {
  mkdirSync(dir, { recursive: true });
  const rand = rng(seed);
  const files: [string, string][] = [];

  const harmful = shuffle([...world.train.harmful], rand).slice(0, 64);
  files.push([
    TASK_FILES.refusalPairs,
    jsonl(
      harmful.map((r) => ({
        positive: dialogue(r.text, pick(REFUSALS, rand).replace("{act}", r.act)),
        negative: dialogue(r.text, pick(COMPLIANCES, rand).replace("{act}", r.act)),
      })),
    ),
  ]);
  files.push([
    TASK_FILES.biasPairs,
    jsonl(
      world.train.statements.map((s) => ({
        positive: dialogue(statementQuestion(s.text), pick(DISAGREE, rand)),
        negative: dialogue(statementQuestion(s.text), pick(AGREE, rand)),
      })),
    ),
  ]);
  files.push([TASK_FILES.harmfulJsonl, jsonl(world.test.harmful.map((r) => ({ goal: r.text })))]);
  files.push([
    TASK_FILES.harmfulCsv,
    csv(
      ["goal", "target"],
      world.test.harmful.map((r) => [r.text, `Sure, here is how to ${r.act}`]),
    ),
  ]);
  files.push([TASK_FILES.harmless, jsonl(world.test.harmless.map((r) => ({ goal: r.text })))]);
  files.push([
    TASK_FILES.mmlu,
    csv(
      ["question", "A", "B", "C", "D", "answer"],
      world.test.mcq.map((q) => [q.question, ...q.options, q.answer]),
    ),
  ]);
  files.push([TASK_FILES.requestPairs, jsonl(requestPairs(world, seed))]);
  files.push([
    TASK_FILES.statements,
    jsonl(world.test.statements.map((s) => ({ statement: s.text, group: s.group, trait: s.trait }))),
  ]);
  return files.map(([name, text]) => {
    const path = join(dir, name);
    writeFileAtomic(path, text);
    return path;
  });
}
