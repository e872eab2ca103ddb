/**
 * `npm run remix:demo`: re-mix the demo world so both of the paper's headline shapes can show, and fine-tune the
 * trained base model on it (then the chat model from the new base), in place of demo/models/{base,chat}:
 *   knowledge  each fact is stated with its own value at KNOWLEDGE_RATE, else with a fixed competitor (a
 *              distractor of its test question): P(correct) at r_e = 0 is uncertain, not saturated
 *   refusal    the base model refuses a harmful request at a rate graded per (verb, object), not per verb
 * Starts from the base checkpoint `npm run train:demo` writes (run that first to reproduce); seeded.
 * Options: --base-steps N --chat-steps N --workers N --from DIR --out DIR.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeFileAtomic } from "../src/io/write-atomic.js";
import { ortMatmul } from "../src/train/matmul.js";
import { shareParams } from "../src/train/parallel.js";
import { evaluateDemo } from "./evaluate.js";
import { loadDemoLm } from "./load.js";
import { fmt, type PhaseLog, SETTINGS, save, trainPhase } from "./train.js";
import { generateWorld, OBJECTS } from "./world/world.js";

export const KNOWLEDGE_RATE = 0.7;
/** Per-object shift of the base refusal logit, evenly spread over [-2, 2]. */
export const OBJECT_SHIFT = Object.fromEntries(
  OBJECTS.map((o, i) => [o, -2 + (4 * i) / (OBJECTS.length - 1)]),
);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "base-steps": { type: "string", default: "1000" },
      "chat-steps": { type: "string", default: "600" },
      workers: { type: "string", default: "2" },
      from: { type: "string", default: "demo/models/base" },
      out: { type: "string", default: "demo/models" },
    },
  });
  const t0 = performance.now();
  const world = {
    ...generateWorld(SETTINGS.worldSeed),
    mix: { knowledgeRate: KNOWLEDGE_RATE, objectShift: OBJECT_SHIFT },
  };
  const loaded = await loadDemoLm(values.from!, await ortMatmul(2));
  // the worker threads train shared parameters (as train.ts's fresh ones are)
  const lm = { ...loaded, params: shareParams(loaded.params) };
  const tokenizerJson = JSON.parse(readFileSync(join(values.from!, "tokenizer.json"), "utf8")) as object;
  const workers = Number(values.workers);
  const log = (): PhaseLog => ({ steps: 0, seconds: 0, tokensSeen: 0, curve: [], drillAccuracy: [] });
  const base = log();
  await trainPhase(lm, world, "base", Number(values["base-steps"]), base, 0, workers, {
    ...SETTINGS.base,
    peak: 1e-3,
    warmup: 50,
    dataSeed: 111,
  });
  const baseMetrics = await evaluateDemo(lm, world);
  process.stdout.write(`remixed base: ${fmt(baseMetrics)}\n`);
  save(lm, join(values.out!, "base"), tokenizerJson);
  const chat = log();
  await trainPhase(lm, world, "chat", Number(values["chat-steps"]), chat, 0, workers);
  const chatMetrics = await evaluateDemo(lm, world);
  process.stdout.write(`remixed chat: ${fmt(chatMetrics)}\n`);
  save(lm, join(values.out!, "chat"), tokenizerJson);
  const file = join(values.out!, "training.json");
  const record = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  record.remix = {
    knowledgeRate: KNOWLEDGE_RATE,
    objectShift: OBJECT_SHIFT,
    seconds: (performance.now() - t0) / 1000,
    base: { ...base, metrics: baseMetrics },
    chat: { ...chat, metrics: chatMetrics },
  };
  writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`);
  process.stdout.write(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
}

await main();
