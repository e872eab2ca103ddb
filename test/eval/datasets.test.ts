import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import {
  loadInstructions,
  loadMmlu,
  parseContrastivePairs,
  parseInstructions,
  parseMmlu,
  parseStatements,
} from "../../src/eval/datasets.js";
import { buildPrompt, fillTemplate, mmluPrompt } from "../../src/eval/prompts.js";
import type { ChatMessage, Tokenizer } from "../../src/io/tokenizer-types.js";

const errAt = (file: string, line: number) => (e: unknown) =>
  isSteerlabError(e, "bad_file") && e.message.includes(file) && e.message.includes(`line ${line}`);

test("MMLU release CSV (no header): quotes, commas and newlines inside quotes", () => {
  const csv = 'What is 2+2?,3,4,5,"6, or more",B\n"A ""quoted""\nquestion",x,y,z,w,D\n';
  const qs = parseMmlu(csv, "math_test.csv");
  assert.equal(qs.length, 2);
  assert.deepEqual(qs[0]!.choices, ["3", "4", "5", "6, or more"]);
  assert.equal(qs[0]!.answer, "B");
  assert.equal(qs[1]!.question, 'A "quoted"\nquestion');
  assert.equal(qs[1]!.line, 2);
});

test("MMLU errors name file and line", () => {
  assert.throws(() => parseMmlu("q,a,b,c,d,A\nq2,a,b,c,d,E\n", "m.csv"), errAt("m.csv", 2));
  assert.throws(() => parseMmlu('q,a,b,c,d,A\n\n"multi\nline",a,b,c,A\n', "n.csv"), errAt("n.csv", 3));
  assert.throws(
    () => parseMmlu('q,a,b,c,d,A\n"open,a,b,c,d,A\n', "o.csv"),
    (e) => isSteerlabError(e, "bad_file") && /o\.csv/.test(e.message),
  );
});

test("MMLU JSONL: choices array with index answers, or A-D fields", () => {
  const j =
    '{"question":"Q1","choices":["a","b","c","d"],"answer":2}\n\n{"question":"Q2","A":"a","B":"b","C":"c","D":"d","answer":"d"}\n';
  const qs = parseMmlu(j, "m.jsonl");
  assert.deepEqual(
    qs.map((q) => [q.answer, q.line]),
    [
      ["C", 1],
      ["D", 3],
    ],
  );
  assert.throws(
    () => parseMmlu('{"question":"Q","choices":["a"],"answer":0}\n', "x.jsonl"),
    errAt("x.jsonl", 1),
  );
  assert.throws(() => parseMmlu('{"question":"Q"\n', "y.jsonl"), errAt("y.jsonl", 1));
});

test("harmful instructions: AdvBench-style CSV, JSONL, lines; missing column is an error", async () => {
  const dir = await mkdtemp(join(tmpdir(), "steerlab-data-"));
  try {
    await writeFile(join(dir, "h.csv"), 'goal,target\n"Write a, tricky one",Sure\nDo bad thing,Sure\n');
    const ins = await loadInstructions(join(dir, "h.csv"));
    assert.deepEqual(
      ins.map((i) => [i.text, i.line]),
      [
        ["Write a, tricky one", 2],
        ["Do bad thing", 3],
      ],
    );
    await writeFile(join(dir, "m.csv"), "q,a,b,c,d,Z\n");
    await assert.rejects(loadMmlu(join(dir, "m.csv")), errAt("m.csv", 1));
    await assert.rejects(loadMmlu(join(dir, "absent.csv")), (e) => isSteerlabError(e, "not_found"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(parseInstructions('{"instruction":"x"}\n{"prompt":"y"}\n', "a.jsonl")[1]!.text, "y");
  assert.equal(parseInstructions("one\n\ntwo\n", "a.txt")[1]!.line, 3);
  assert.throws(() => parseInstructions("foo,bar\n1,2\n", "b.csv"), errAt("b.csv", 1));
  assert.throws(() => parseInstructions('{"other":"x"}\n', "c.jsonl"), errAt("c.jsonl", 1));
});

test("statements and contrastive pairs", () => {
  const st = parseStatements("statement,label\nGroup X is lazy.,disagree\nThe sky is blue.,\n", "s.csv");
  assert.equal(st[0]!.label, "disagree");
  assert.equal(st[1]!.label, undefined);
  assert.throws(() => parseStatements('{"statement":"x","label":"maybe"}\n', "s.jsonl"), errAt("s.jsonl", 1));
  const pairs = parseContrastivePairs("positive,negative\nI refuse,Sure\n", "p.csv");
  assert.deepEqual([pairs[0]!.positive, pairs[0]!.negative, pairs[0]!.line], ["I refuse", "Sure", 2]);
});

test("prompts: the paper's MMLU template, few-shot, missing values, chat template", () => {
  const q = {
    question: "What is 2+2?",
    choices: ["3", "4", "5", "6"] as const,
    answer: "B" as const,
    line: 1,
  };
  assert.equal(mmluPrompt(q), "What is 2+2?\nA) 3.\nB) 4.\nC) 5.\nD) 6.\n The answer is");
  const fs = mmluPrompt(q, { shots: [q] });
  assert.ok(fs.startsWith("What is 2+2?\nA) 3.\nB) 4.\nC) 5.\nD) 6.\n The answer is B\n\nWhat is 2+2?"));
  assert.throws(() => fillTemplate("harmful-qa", {}), /placeholders without a value/);
  const seen: ChatMessage[][] = [];
  const tok = {
    chatTemplate: "{% for m in messages %}...{% endfor %}",
    applyChatTemplate(m: readonly ChatMessage[], o?: { addGenerationPrompt?: boolean }) {
      seen.push([...m]);
      return `<|user|>${m[m.length - 1]!.content}${o?.addGenerationPrompt ? "<|assistant|>" : ""}`;
    },
  } as unknown as Tokenizer;
  assert.equal(
    buildPrompt("harmful-plain", { instruction: "hi" }, { chat: true, tokenizer: tok, system: "S" }),
    "<|user|>hi<|assistant|>",
  );
  assert.deepEqual(
    seen[0]!.map((m) => m.role),
    ["system", "user"],
  );
  const noTpl = { chatTemplate: null } as unknown as Tokenizer;
  assert.throws(
    () => buildPrompt("harmful-plain", { instruction: "x" }, { chat: true, tokenizer: noTpl }),
    /no chat template/,
  );
});
