/**
 * Where a forward's time goes inside ONNX Runtime: one model file on the engine with ORT's per-node profiling on,
 * a prefill of --prompt tokens and --steps decode steps, then the profiles of every session summed by operator
 * (prefill and decode apart: runs with more than one token are prefill).
 * Run: npx tsx bench/ort-profile.ts FILE [--threads 2] [--prompt 512] [--steps 16] [--granularity site|block]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel } from "../src/model/load.js";
import { createOrtEngine } from "../src/runtime/ort-engine.js";
import { ids } from "./cases.js";

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i < 0 ? d : process.argv[i + 1]!;
};
const file = process.argv[2]!;
const dir = mkdtempSync(join(tmpdir(), "steerlab-ortprof-"));
const m = await loadModel(file, { finiteCheck: "read" });
const engine = await createOrtEngine(m, {
  threads: Number(arg("threads", "2")),
  consumeWeights: true,
  granularity: arg("granularity", "site") as "site",
  profilePrefix: join(dir, "p"),
});
const cache = engine.newCache(1);
const prompt = ids(Number(arg("prompt", "512")), m.config.vocabSize, 1);
let t = performance.now();
await engine.forward({ ids: [prompt] }, { cache, logits: "last" });
const prefillMs = performance.now() - t;
const steps = Number(arg("steps", "16"));
t = performance.now();
for (let i = 0; i < steps; i++) await engine.forward({ ids: [[i + 5]] }, { cache });
const decodeMs = (performance.now() - t) / steps;
await engine.dispose();
interface Ev {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string; output_type_shape?: Record<string, number[]>[] };
}
const by = { prefill: new Map<string, number>(), decode: new Map<string, number>() };
for (const f of readdirSync(dir)) {
  for (const e of JSON.parse(readFileSync(join(dir, f), "utf8")) as Ev[]) {
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const shapes = JSON.stringify(e.args?.output_type_shape ?? []);
    // The prefill run's outputs carry the prompt length as a dimension; decode steps carry 1.
    const phase =
      shapes.includes(`,${prompt.length},`) || shapes.includes(`[1,${prompt.length}`) ? "prefill" : "decode";
    const op = e.args?.op_name ?? "?";
    by[phase].set(op, (by[phase].get(op) ?? 0) + e.dur);
  }
}
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`wall: prefill ${prefillMs.toFixed(0)} ms, decode ${decodeMs.toFixed(1)} ms/token\n`);
for (const [phase, map] of Object.entries(by)) {
  const total = [...map.values()].reduce((a, b) => a + b, 0);
  const per = phase === "decode" ? steps : 1;
  process.stdout.write(
    `${phase}: kernels ${(total / 1000 / per).toFixed(1)} ms${phase === "decode" ? "/token" : ""}\n`,
  );
  for (const [op, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, 10)) {
    process.stdout.write(
      `  ${op.padEnd(28)} ${(us / 1000 / per).toFixed(2)} ms  ${((100 * us) / total).toFixed(1)}%\n`,
    );
  }
}
