/**
 * `tsx demo/eval.ts [model dirs...]`: the quick evaluation (evaluate.ts) of saved demo models, loaded from their
 * Hugging Face folders. Defaults to demo/models/base and demo/models/chat.
 */
import { ortMatmul } from "../src/train/matmul.js";
import { evaluateDemo } from "./evaluate.js";
import { loadDemoLm } from "./load.js";
import { generateWorld, WORLD_SEED } from "./world/world.js";

const dirs = process.argv.slice(2);
const mm = await ortMatmul(2);
const world = generateWorld(WORLD_SEED);
for (const dir of dirs.length ? dirs : ["demo/models/base", "demo/models/chat"]) {
  const metrics = await evaluateDemo(await loadDemoLm(dir, mm), world);
  process.stdout.write(`${dir}: ${JSON.stringify(metrics)}\n`);
}
