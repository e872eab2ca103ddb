/**
 * One MatMulNBits of TinyLlama's gate+up shape (K 2048, N 11264) on ONNX Runtime's CPU kernels: CPU time per call
 * (less disturbed by other load than wall time) for 4 and 8 bits, accuracy_level 0 (f32) and 4 (int8 activations),
 * 1 row (decode) and 128 rows (prefill), against a dense f32 MatMul of the same shape.
 * Run: npx tsx bench/nbits-kernel.bench.ts [--threads 1]
 */
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../src/model/graph/builder.js";
import { rng } from "../src/model/random.js";

const K = 2048;
const N = 11264;
const ti = process.argv.indexOf("--threads");
const threads = ti < 0 ? 1 : Number(process.argv[ti + 1]);
const u = rng(1);

async function session(kind: "dense" | { bits: 4 | 8; accuracy: number }): Promise<ort.InferenceSession> {
  const g = GraphBuilder.create();
  const x = g.input("x", "float32", ["rows", K]);
  let y: string;
  if (kind === "dense") {
    const w = Float32Array.from({ length: N * K }, () => u() - 0.5);
    y = g.op("MatMul", [x, g.weight("w", [K, N], w)]);
  } else {
    const nb = K / 32;
    const blob = (32 * kind.bits) / 8;
    const codes = Uint8Array.from({ length: N * nb * blob }, () => Math.floor(u() * 256));
    const scales = Float32Array.from({ length: N * nb }, () => 0.01 + 0.01 * u());
    y = g.msOp(
      "MatMulNBits",
      [x, g.bytes("codes", [N, nb, blob], codes), g.weight("scales", [N * nb], scales)],
      {
        K,
        N,
        bits: kind.bits,
        block_size: 32,
        accuracy_level: kind.accuracy,
      },
    );
  }
  g.output(y, "y", "float32", ["rows", N]);
  const { bytes, files } = g.encode("m", { external: true });
  return ort.InferenceSession.create(bytes, {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    enableCpuMemArena: false,
    externalData: files,
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  });
}

async function time(s: ort.InferenceSession, rows: number, reps: number): Promise<string> {
  const feed = {
    x: new ort.Tensor(
      "float32",
      Float32Array.from({ length: rows * K }, () => u() - 0.5),
      [rows, K],
    ),
  };
  await s.run(feed);
  let cpu = Number.POSITIVE_INFINITY;
  let wall = Number.POSITIVE_INFINITY;
  for (let r = 0; r < reps; r++) {
    const c = process.cpuUsage();
    const t = performance.now();
    await s.run(feed);
    wall = Math.min(wall, performance.now() - t);
    const d = process.cpuUsage(c);
    cpu = Math.min(cpu, (d.user + d.system) / 1000);
  }
  return `${cpu.toFixed(2)} ms CPU (${wall.toFixed(2)} wall)`;
}

for (const kind of [
  { bits: 4, accuracy: 4 },
  { bits: 4, accuracy: 0 },
  { bits: 8, accuracy: 4 },
  { bits: 8, accuracy: 0 },
  "dense",
] as const) {
  const s = await session(kind);
  const label = kind === "dense" ? "f32 MatMul" : `${kind.bits}-bit acc ${kind.accuracy}`;
  process.stdout.write(
    `${label.padEnd(12)} 1 row: ${await time(s, 1, 20)}; 128 rows: ${await time(s, 128, 4)}\n`,
  );
  await s.release();
}
