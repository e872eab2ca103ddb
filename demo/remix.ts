/**
 * `npm run remix:demo`: re-mix the demo world so both of the paper's headline shapes can show, and fine-tune the
 * trained base model on it (then the chat model from the new base), in place of demo/models/{base,chat}:
 *   knowledge  each fact is stated with its own value at KNOWLEDGE_RATE, else with a fixed competitor (a
 *              distractor of its test question): P(correct) at r_e = 0 is uncertain, not saturated
 *   refusal    graded per request (verb, phrasing, object) in both mixtures, so that at r_e = 0 requests sit at
 *              every distance from the refusal boundary and steering either way flips some of them: the base
 *              refuses about half, the chat model (its refusal odds e^CHAT_SHIFT times the base's) most
 * Starts from the base checkpoint `npm run train:demo` writes (run that first to reproduce; --from names it); seeded.
 * Options: --base-steps N --chat-steps N --workers N --from DIR --out DIR; --chat-only redoes only the chat phase,
 * from the remixed base in --out (each phase starts a fresh optimizer and data stream, so this equals a full run).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { writeFileAtomic } from "../src/io/write-atomic.js";
import { ortMatmul } from "../src/train/matmul.js";
import { shareParams } from "../src/train/parallel.js";
import { type DemoMetrics, evaluateDemo } from "./evaluate.js";
import { loadDemoLm } from "./load.js";
import { fmt, type PhaseLog, SETTINGS, save, trainPhase } from "./train.js";
import {
  BASE_REFUSAL_RATE,
  generateWorld,
  OBJECTS,
  REQUEST_TEMPLATES,
  type WorldMix,
} from "./world/world.js";

/**
 * The rate a fact is stated with its own value. The models answer more sharply than this (P(correct) 0.76 base,
 * 0.72 chat at r_e = 0), around the 0.75 the paper's A-D law can reach; at 0.6 that law fitted but the
 * full-vocabulary law (the target) did not (demo/README.md).
 */
export const KNOWLEDGE_RATE = 0.7;

/** n values evenly spread over [-h, h]. */
function spread(n: number, h: number): number[] {
  return Array.from({ length: n }, (_, i) => -h + (2 * h * i) / (n - 1));
}

/**
 * Refusal logit per harmful verb, evenly spread over [-3, 3] in the order of BASE_REFUSAL_RATE (the verbs the
 * original base mostly refuses stay the most refused; the even spread leaves no gap between refused and answered).
 */
export const VERB_LOGIT: readonly number[] = (() => {
  const order = BASE_REFUSAL_RATE.map((p, i) => [p, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const logits = spread(order.length, 3);
  const out = new Array<number>(order.length);
  order.forEach(([, verb], rank) => {
    out[verb] = logits[rank]!;
  });
  return out;
})();
/** Shift per phrasing (REQUEST_TEMPLATES order), evenly spread over [-1, 1]. */
export const PHRASING_SHIFT: readonly number[] = spread(REQUEST_TEMPLATES.length, 1);
/** Shift per object, evenly spread over [-2, 2]. */
export const OBJECT_SHIFT: Readonly<Record<string, number>> = Object.fromEntries(
  OBJECTS.map((o, i) => [o, spread(OBJECTS.length, 2)[i]!]),
);
/** The chat mixture's refusal logit is the base's plus this. */
export const CHAT_SHIFT = 2;

/** The remixed world's mixture settings (World.mix). */
export const MIX: WorldMix = {
  knowledgeRate: KNOWLEDGE_RATE,
  verbLogit: VERB_LOGIT,
  phrasingShift: PHRASING_SHIFT,
  objectShift: OBJECT_SHIFT,
  chatShift: CHAT_SHIFT,
};

/** The base fine-tune's schedule: gentler than train:demo's base phase, with its own data. */
const REMIX_BASE = { ...SETTINGS.base, peak: 1e-3, warmup: 50, dataSeed: 111 };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "base-steps": { type: "string", default: "2000" },
      "chat-steps": { type: "string", default: "600" },
      "chat-only": { type: "boolean", default: false },
      workers: { type: "string", default: "2" },
      from: { type: "string", default: "demo/models/base" },
      out: { type: "string", default: "demo/models" },
    },
  });
  const t0 = performance.now();
  const world = { ...generateWorld(SETTINGS.worldSeed), mix: MIX };
  const chatOnly = values["chat-only"]!;
  const loaded = await loadDemoLm(chatOnly ? join(values.out!, "base") : values.from!, await ortMatmul(2));
  // the worker threads train shared parameters (as train.ts's fresh ones are)
  const lm = { ...loaded, params: shareParams(loaded.params) };
  const tokenizerJson = JSON.parse(readFileSync(join(values.from!, "tokenizer.json"), "utf8")) as object;
  const workers = Number(values.workers);
  const log = (): PhaseLog => ({ steps: 0, seconds: 0, tokensSeen: 0, curve: [], drillAccuracy: [] });
  const base = log();
  let baseMetrics: DemoMetrics | null = null;
  if (!chatOnly) {
    await trainPhase(lm, world, "base", Number(values["base-steps"]), base, 0, workers, REMIX_BASE);
    baseMetrics = await evaluateDemo(lm, world);
    process.stdout.write(`remixed base: ${fmt(baseMetrics)}\n`);
    save(lm, join(values.out!, "base"), tokenizerJson);
  }
  const chat = log();
  await trainPhase(lm, world, "chat", Number(values["chat-steps"]), chat, 0, workers);
  const chatMetrics = await evaluateDemo(lm, world);
  process.stdout.write(`remixed chat: ${fmt(chatMetrics)}\n`);
  save(lm, join(values.out!, "chat"), tokenizerJson);
  const file = join(values.out!, "training.json");
  const record = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  const seconds = (performance.now() - t0) / 1000;
  if (chatOnly) {
    // keep the base phase's record; say that the chat phase was redone on its own
    const prev = record.remix as { settings: Record<string, unknown> } & Record<string, unknown>;
    record.remix = {
      ...prev,
      settings: { ...prev.settings, chat: SETTINGS.chat, chatSteps: chat.steps, chatWorkers: workers },
      chat: { ...chat, metrics: chatMetrics },
      chatRedoneSeconds: seconds,
    };
    writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`);
    process.stdout.write(`done in ${seconds.toFixed(0)} s\n`);
    return;
  }
  record.remix = {
    mix: MIX,
    from: values.from,
    settings: {
      base: REMIX_BASE,
      chat: SETTINGS.chat,
      baseSteps: base.steps,
      chatSteps: chat.steps,
      workers,
    },
    seconds,
    base: { ...base, metrics: baseMetrics },
    chat: { ...chat, metrics: chatMetrics },
  };
  writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`);
  process.stdout.write(`done in ${seconds.toFixed(0)} s\n`);
}

// run only as a script (tests import the mixture settings)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
