/**
 * What ONNX Runtime holds for one MatMulNBits weight (4-bit, block 32, K x N = 8192 x 32000, 156 MiB as handed
 * over as in-memory external data, the way the engine hands over weights), by accuracy_level and prepacking:
 * resident memory above the process base once the session ran, minus the JavaScript copy (kept alive here).
 * Run: npx tsx bench/nbits-memory.bench.ts  (each configuration in its own process)
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../src/model/graph/builder.js";
import { collect, MiB, vmKiB } from "./cases.js";

const K = 8192;
const N = 32000;

async function one(accuracy: number, prepack: boolean): Promise<string> {
  collect();
  const base = vmKiB("VmRSS") / 1024;
  const nb = K / 32;
  const codes = new Uint8Array(N * nb * 16).fill(0x77);
  const scales = new Float32Array(N * nb).fill(0.01);
  const g = GraphBuilder.create();
  const x = g.input("x", "float32", [1, K]);
  const y = g.msOp(
    "MatMulNBits",
    [x, g.bytes("codes", [N, nb, 16], codes), g.weight("scales", [N * nb], scales)],
    {
      K,
      N,
      bits: 4,
      block_size: 32,
      accuracy_level: accuracy,
    },
  );
  g.output(y, "y", "float32", [1, N]);
  const { bytes, files } = g.encode("m", { external: true });
  const s = await ort.InferenceSession.create(bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: 1,
    enableCpuMemArena: false,
    externalData: files,
    extra: prepack ? {} : { session: { disable_prepacking: "1" } },
  });
  const feed = { x: new ort.Tensor("float32", new Float32Array(K), [1, K]) };
  await s.run(feed);
  collect();
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) await s.run(feed);
  const ms = (performance.now() - t0) / 5;
  const weights = (codes.byteLength + scales.byteLength) / MiB;
  const held = vmKiB("VmRSS") / 1024 - base - weights; // the JS copy is still referenced
  return (
    `accuracy_level ${accuracy}, prepacking ${prepack ? "on " : "off"}: weights ${weights.toFixed(0)} MiB, ` +
    `ONNX Runtime holds ${held.toFixed(0)} MiB (${(held / weights).toFixed(2)}x), ${ms.toFixed(1)} ms per 1-row matmul`
  );
}

const arg = process.argv.indexOf("--case");
if (arg >= 0) {
  const [acc, pre] = process.argv[arg + 1]!.split(":");
  process.stdout.write(`${await one(Number(acc), pre === "1")}\n`);
} else if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const c of ["4:1", "4:0", "0:1"]) {
    const args = [...process.execArgv, fileURLToPath(import.meta.url), "--case", c];
    process.stdout.write(execFileSync(process.execPath, args, { encoding: "utf8" }));
  }
}
