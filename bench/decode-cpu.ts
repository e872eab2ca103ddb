/**
 * Decode cost of one model file on the engine as CPU time per token (steadier than wall time on a shared machine):
 * a 16-token prompt, then --steps decode steps, best of --reps. Run: npx tsx bench/decode-cpu.ts FILE [--threads 1]
 */
import { loadModel } from "../src/model/load.js";
import { createOrtEngine } from "../src/runtime/ort-engine.js";
import { ids } from "./cases.js";

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i < 0 ? d : process.argv[i + 1]!;
};
const m = await loadModel(process.argv[2]!);
const engine = await createOrtEngine(m, { threads: Number(arg("threads", "1")), consumeWeights: true });
const steps = Number(arg("steps", "32"));
let cpu = Number.POSITIVE_INFINITY;
let wall = Number.POSITIVE_INFINITY;
for (let r = 0; r < Number(arg("reps", "3")); r++) {
  const cache = engine.newCache(1);
  await engine.forward({ ids: [ids(16, m.config.vocabSize, r)] }, { cache, logits: "last" });
  const c = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < steps; i++) await engine.forward({ ids: [[i + 3]] }, { cache });
  wall = Math.min(wall, (performance.now() - t) / steps);
  const d = process.cpuUsage(c);
  cpu = Math.min(cpu, (d.user + d.system) / 1000 / steps);
}
await engine.dispose();
process.stdout.write(`decode: ${cpu.toFixed(2)} ms CPU/token, ${wall.toFixed(2)} ms wall/token\n`);
