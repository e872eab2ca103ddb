/**
 * Who holds a MatMulNBits weight once its session exists: resident memory above the base after the session was
 * created and run, with the JavaScript copy dropped and collected, for several ways of handing the weight over
 * (in-memory external data / inside the protobuf) and session settings. Each case runs in its own process.
 * Run: npx tsx bench/nbits-hold.bench.ts
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../src/model/graph/builder.js";
import { collect, MiB, vmKiB } from "./cases.js";

const K = 8192;
const N = 32000;

async function one(c: string): Promise<string> {
  collect();
  const base = vmKiB("VmRSS") / 1024;
  const nb = K / 32;
  let codes: Uint8Array | null = new Uint8Array(N * nb * 16).fill(0x77);
  let scales: Float32Array | null = new Float32Array(N * nb).fill(0.01);
  const weights = (codes.byteLength + scales.byteLength) / MiB;
  const g = GraphBuilder.create();
  const x = g.input("x", "float32", [1, K]);
  const y = g.msOp(
    "MatMulNBits",
    [x, g.bytes("codes", [N, nb, 16], codes), g.weight("scales", [N * nb], scales)],
    { K, N, bits: 4, block_size: 32, accuracy_level: c.includes("acc0") ? 0 : 4 },
  );
  g.output(y, "y", "float32", [1, N]);
  const external = !c.includes("proto");
  let enc: ReturnType<GraphBuilder["encode"]> | null = g.encode("m", { external });
  const session: Record<string, string> = {};
  if (c.includes("noprepack")) session.disable_prepacking = "1";
  if (c.includes("devalloc")) session.use_device_allocator_for_initializers = "1";
  if (c.includes("envalloc")) session.use_env_allocators = "1";
  const s = await ort.InferenceSession.create(enc.bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
    enableCpuMemArena: c.includes("arena"),
    externalData: enc.files,
    extra: { session },
  });
  const afterCreate = vmKiB("VmRSS") / 1024 - base;
  enc = null;
  codes = null;
  scales = null;
  (g as unknown as { books: unknown }).books = null;
  collect();
  await new Promise((r) => setTimeout(r, 100));
  collect();
  const feed = { x: new ort.Tensor("float32", new Float32Array(K), [1, K]) };
  await s.run(feed);
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) await s.run(feed);
  const ms = (performance.now() - t0) / 3;
  collect();
  const held = vmKiB("VmRSS") / 1024 - base;
  const peak = vmKiB("VmHWM") / 1024 - base;
  return `${c.padEnd(22)} weight ${weights.toFixed(0)} MiB: after create ${(afterCreate / weights).toFixed(2)}x, held after JS dropped ${(held / weights).toFixed(2)}x, peak ${(peak / weights).toFixed(2)}x, ${ms.toFixed(1)} ms/matvec`;
}

const arg = process.argv.indexOf("--case");
if (arg >= 0) {
  process.stdout.write(`${await one(process.argv[arg + 1]!)}\n`);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cases = process.argv.slice(2).length
    ? process.argv.slice(2)
    : ["external", "proto", "external-noprepack", "external-devalloc", "external-envalloc", "external-arena"];
  for (const c of cases) {
    const args = [...process.execArgv, fileURLToPath(import.meta.url), "--case", c];
    process.stdout.write(execFileSync(process.execPath, args, { encoding: "utf8" }));
  }
}
