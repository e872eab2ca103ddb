/**
 * `npm run train:demo`: build the demo world, its task files, a byte-level BPE tokenizer and the two demo models,
 * then evaluate and save them in the Hugging Face layout:
 *   demo/tasks/          the task files the lab reads (world/tasks.ts)
 *   demo/models/base/    an MCQ skills warm-up (loss on answer letters only), then the base mixture (complies
 *                        with many harmful requests)
 *   demo/models/chat/    the base fine-tuned on the chat mixture (refuses harmful requests)
 *   demo/models/training.json   loss curves, metrics, timings, settings
 * Everything is seeded; options: --base-steps N --chat-steps N --workers N --eval-every N --out DIR --tasks DIR.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_SPECIAL_TOKENS, trainByteLevelBpe } from "../src/io/bpe-train.js";
import { saveHfModel } from "../src/io/hf-model.js";
import { tokenizerFromJson } from "../src/io/tokenizer.js";
import { writeFileAtomic } from "../src/io/write-atomic.js";
import type { ModelConfig } from "../src/model/config.js";
import { rng } from "../src/model/random.js";
import { expectedWeights } from "../src/model/weights.js";
import { tensor } from "../src/tensor.js";
import { AdamW, clipGradNorm, countParams, initParams, lrAt, zerosLike } from "../src/train/adamw.js";
import { LlamaTrainer } from "../src/train/llama.js";
import { type MatmulBackend, ortMatmul } from "../src/train/matmul.js";
import { ParallelTrainer, shareParams } from "../src/train/parallel.js";
import { Batcher } from "./batches.js";
import { type DemoMetrics, drillAccuracy, evaluateDemo } from "./evaluate.js";
import type { DemoLm } from "./lm.js";
import { CHAT_TEMPLATE } from "./world/format.js";
import { type Stream, tokenizerCorpus } from "./world/mixture.js";
import { writeTaskFiles } from "./world/tasks.js";
import { generateWorld, WORLD_SEED, type World } from "./world/world.js";

export const SETTINGS = {
  worldSeed: WORLD_SEED,
  vocabSize: 512,
  tokenizerDocs: 20000,
  model: { hiddenSize: 96, nLayers: 4, nHeads: 6, headDim: 16, intermediateSize: 256, maxPositions: 128 },
  initSeed: 1,
  batch: 16,
  seq: 64,
  /** Loss weight of MCQ answer letters (see batches.ts). */
  answerWeight: 5,
  /**
   * The skills warm-up runs at a constant rate after warmup until the model answers `skillTarget` of 64 fresh
   * training drills (checked every `skillCheckEvery` steps), or `steps` at most: the skill forms suddenly, at a
   * step that is hard to predict.
   */
  skills: { steps: 6000, peak: 3e-3, warmup: 50, minRatio: 1, dataSeed: 303 },
  skillTarget: 0.95,
  skillCheckEvery: 100,
  base: { peak: 3e-3, warmup: 100, minRatio: 0.1, dataSeed: 101 },
  chat: { peak: 1e-3, warmup: 20, minRatio: 0.1, dataSeed: 202 },
  clip: 1,
  logEvery: 25,
};

function modelConfig(vocabSize: number): ModelConfig {
  const m = SETTINGS.model;
  return {
    arch: "llama",
    vocabSize,
    hiddenSize: m.hiddenSize,
    nLayers: m.nLayers,
    nHeads: m.nHeads,
    nKvHeads: m.nHeads,
    headDim: m.headDim,
    intermediateSize: m.intermediateSize,
    normEps: 1e-5,
    maxPositions: m.maxPositions,
    ropeTheta: 10000,
    ropeScaling: null,
    tiedEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  };
}

const TOKENIZER_CONFIG = {
  bos_token: "<s>",
  eos_token: "</s>",
  pad_token: "<pad>",
  unk_token: "<unk>",
  add_bos_token: true,
  add_eos_token: false,
  clean_up_tokenization_spaces: false,
  model_max_length: SETTINGS.model.maxPositions,
  chat_template: CHAT_TEMPLATE,
};

export interface PhaseLog {
  steps: number;
  seconds: number;
  tokensSeen: number;
  curve: [number, number][]; // [step, mean loss over the last logEvery steps]
  drillAccuracy: [number, number][]; // skills phase: [step, accuracy on fresh training drills]
}

export async function trainPhase(
  lm: DemoLm,
  world: World,
  variant: Stream,
  steps: number,
  log: PhaseLog,
  evalEvery: number,
  workers: number,
  schedule: { peak: number; warmup: number; minRatio: number; dataSeed: number } = SETTINGS[variant],
) {
  const o = schedule;
  const batcher = new Batcher(lm, world, variant, o.dataSeed, SETTINGS.answerWeight);
  const grads = zerosLike(lm.params);
  const opt = new AdamW(lm.params);
  const par = new ParallelTrainer(lm.config, lm.params, workers);
  const t0 = performance.now();
  let acc = 0;
  let step = 0;
  for (; step < steps; step++) {
    const b = batcher.next(SETTINGS.batch, SETTINGS.seq);
    acc += await par.step(grads, b.tokens, b.targets, SETTINGS.batch, SETTINGS.seq, b.weights, b.docStart);
    clipGradNorm(grads, SETTINGS.clip);
    opt.step(lm.params, grads, lrAt(step, { ...o, total: steps }));
    log.tokensSeen += SETTINGS.batch * SETTINGS.seq;
    if ((step + 1) % SETTINGS.logEvery === 0 || step === steps - 1) {
      const n = (step % SETTINGS.logEvery) + 1;
      log.curve.push([step + 1, acc / n]);
      const s = (performance.now() - t0) / 1000;
      process.stdout.write(
        `${variant} step ${step + 1}/${steps} loss ${(acc / n).toFixed(4)} ` +
          `${(log.tokensSeen / s).toFixed(0)} tok/s ${s.toFixed(0)} s\n`,
      );
      acc = 0;
    }
    if (evalEvery > 0 && (step + 1) % evalEvery === 0 && step < steps - 1) {
      process.stdout.write(`${variant} step ${step + 1}: ${fmt(await evaluateDemo(lm, world))}\n`);
    }
    if (variant === "skills" && (step + 1) % SETTINGS.skillCheckEvery === 0) {
      const a = await drillAccuracy(lm, world, 64, 900 + step);
      process.stdout.write(`skills step ${step + 1}: drill accuracy ${a.toFixed(3)}\n`);
      log.drillAccuracy.push([step + 1, a]);
      if (a >= SETTINGS.skillTarget) {
        step++;
        break;
      }
    }
  }
  await par.close();
  log.steps = step;
  log.seconds = (performance.now() - t0) / 1000;
}

export function save(lm: DemoLm, dir: string, tokenizerJson: object): void {
  const shapes = expectedWeights(lm.config);
  const weights = new Map([...lm.params].map(([k, v]) => [k, tensor(shapes.get(k)!, v)]));
  saveHfModel(dir, lm.config, weights, { tokenizerJson, tokenizerConfig: TOKENIZER_CONFIG, dtype: "F32" });
}

export function fmt(m: DemoMetrics): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`)
    .join(", ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "base-steps": { type: "string", default: "6000" },
      "chat-steps": { type: "string", default: "600" },
      out: { type: "string", default: "demo/models" },
      tasks: { type: "string", default: "demo/tasks" },
      "eval-every": { type: "string", default: "0" },
      workers: { type: "string", default: "2" },
    },
  });
  const baseSteps = Number(values["base-steps"]);
  const chatSteps = Number(values["chat-steps"]);
  const evalEvery = Number(values["eval-every"]);
  const workers = Number(values.workers);
  const t0 = performance.now();
  const world = generateWorld(SETTINGS.worldSeed);
  writeTaskFiles(world, values.tasks!);

  const corpus = tokenizerCorpus(world, SETTINGS.tokenizerDocs, rng(SETTINGS.worldSeed + 1));
  const tokenizerJson = trainByteLevelBpe(corpus, SETTINGS.vocabSize, {
    specialTokens: DEFAULT_SPECIAL_TOKENS,
    bosToken: "<s>",
  });
  const tokenizer = tokenizerFromJson(tokenizerJson, TOKENIZER_CONFIG);
  const config = modelConfig(tokenizer.vocabSize);
  const mm: MatmulBackend = await ortMatmul(2);
  const lm: DemoLm = {
    config,
    params: shareParams(initParams(config, SETTINGS.initSeed)),
    tokenizer,
    trainer: new LlamaTrainer(config, mm),
    bos: 1,
    eos: 2,
    pad: 0,
  };
  process.stdout.write(`world: ${world.facts.length} facts; tokenizer: ${tokenizer.vocabSize} tokens; `);
  process.stdout.write(`model: ${countParams(lm.params)} parameters\n`);

  const logs: Record<Stream, PhaseLog> = {
    skills: { steps: 0, seconds: 0, tokensSeen: 0, curve: [], drillAccuracy: [] },
    base: { steps: 0, seconds: 0, tokensSeen: 0, curve: [], drillAccuracy: [] },
    chat: { steps: 0, seconds: 0, tokensSeen: 0, curve: [], drillAccuracy: [] },
  };
  // MCQ skills warm-up (answer letters only), then the base mixture
  await trainPhase(lm, world, "skills", SETTINGS.skills.steps, logs.skills, evalEvery, workers);
  await trainPhase(lm, world, "base", baseSteps, logs.base, evalEvery, workers);
  const baseMetrics = await evaluateDemo(lm, world);
  process.stdout.write(`base: ${fmt(baseMetrics)}\n`);
  save(lm, join(values.out!, "base"), tokenizerJson);

  // chat: the base model fine-tuned (its parameters are trained further in place; base is already saved)
  await trainPhase(lm, world, "chat", chatSteps, logs.chat, evalEvery, workers);
  const chatMetrics = await evaluateDemo(lm, world);
  process.stdout.write(`chat: ${fmt(chatMetrics)}\n`);
  save(lm, join(values.out!, "chat"), tokenizerJson);

  const seconds = (performance.now() - t0) / 1000;
  mkdirSync(values.out!, { recursive: true });
  writeFileAtomic(
    join(values.out!, "training.json"),
    `${JSON.stringify(
      {
        settings: SETTINGS,
        parameters: countParams(lm.params),
        vocabSize: tokenizer.vocabSize,
        matmul: mm.name,
        totalSeconds: seconds,
        skills: logs.skills,
        base: { ...logs.base, metrics: baseMetrics },
        chat: { ...logs.chat, metrics: chatMetrics },
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`done in ${seconds.toFixed(0)} s; models in ${values.out}\n`);
}

// run only as a script (remix.ts imports the phases)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
