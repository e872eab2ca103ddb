/**
 * `tsx demo/calibration.ts [models dir]`: how closely the remixed demo models learned their mixture's refusal
 * rates. Per model (base, chat) and split (the 256 training requests, the 128 held-out ones): the mean first-token
 * margin log P(refusal opening) - log P(compliance opening) beside the mean logit of the mixture's rate, the slope of
 * margin on logit, and B = mean sign of each (the greedy-like B the rates imply). Defaults to demo/models.
 */
import { join } from "node:path";
import { ortMatmul } from "../src/train/matmul.js";
import { firstTokenMass } from "./evaluate.js";
import { loadDemoLm } from "./load.js";
import { MIX } from "./remix.js";
import { dialoguePrompt } from "./world/format.js";
import { refusalRate } from "./world/mixture.js";
import { generateWorld, WORLD_SEED } from "./world/world.js";

const dir = process.argv[2] ?? "demo/models";
const mm = await ortMatmul(2);
const world = { ...generateWorld(WORLD_SEED), mix: MIX };
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const v of ["base", "chat"] as const) {
  const lm = await loadDemoLm(join(dir, v), mm);
  for (const [split, reqs] of [
    ["train", world.train.harmful],
    ["test", world.test.harmful],
  ] as const) {
    const mass = await firstTokenMass(
      lm,
      reqs.map((r) => dialoguePrompt(r.text)),
    );
    const m = mass.map(([r, c]) => Math.log(r) - Math.log(c));
    const z = reqs.map((r) => {
      const p = refusalRate(r, v, world);
      return Math.log(p / (1 - p));
    });
    const mz = mean(z);
    const mm_ = mean(m);
    const slope = mean(z.map((zi, i) => (zi - mz) * (m[i]! - mm_))) / mean(z.map((zi) => (zi - mz) ** 2));
    const sign = (xs: number[]) => mean(xs.map(Math.sign));
    process.stdout.write(
      `${v} ${split} (${reqs.length}): mean margin ${mm_.toFixed(2)}, mixture logit ${mz.toFixed(2)}, ` +
        `slope ${slope.toFixed(2)}; B by margin ${sign(m).toFixed(3)}, by rate ${sign(z).toFixed(3)}\n`,
    );
  }
}
