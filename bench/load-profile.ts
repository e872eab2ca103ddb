/**
 * Where load time and memory go, phase by phase, for one model file: the loader (header, fingerprint, non-finite
 * check), then per graph the JS build (reading and repacking weights), encoding, and ONNX Runtime session creation.
 * RSS is sampled after each phase. Run: npx tsx bench/load-profile.ts FILE [--threads 2] [--no-finite]
 *   [--blocks N: only the first N blocks and the head] [--opt basic|disabled] [--noprepack]
 */

import { statSync } from "node:fs";
import type * as ort from "onnxruntime-node";
import { attnGraph, type BuiltGraph, headGraph, mlpGraph, weightFn } from "../src/model/graph/graphs.js";
import { loadModel } from "../src/model/load.js";
import { createSession, sessionOptions } from "../src/runtime/session.js";
import { collect, vmKiB } from "./cases.js";

const file = process.argv[2]!;
const noFinite = process.argv.includes("--no-finite");
const ti = process.argv.indexOf("--threads");
const threads = ti < 0 ? 2 : Number(process.argv[ti + 1]);
const MiB = 2 ** 20;
const fileMiB = statSync(file).size / MiB;
collect();
const base = vmKiB("VmRSS") / 1024;
const rss = () =>
  `${((vmKiB("VmRSS") / 1024 - base) / fileMiB).toFixed(2)}x (peak ${((vmKiB("VmHWM") / 1024 - base) / fileMiB).toFixed(2)}x)`;
let t = performance.now();
const lap = () => {
  const n = performance.now();
  const d = (n - t) / 1000;
  t = n;
  return d.toFixed(2);
};
const m = await loadModel(file, { allowNonFinite: noFinite, finiteCheck: "read" });
const cpu0 = process.cpuUsage();
process.stdout.write(
  `loadModel ${lap()} s (${((cpu0.user + cpu0.system) / 1e6).toFixed(2)} s CPU)  rss ${rss()}\n`,
);
const base0 = sessionOptions({ threads });
const optArg = process.argv.indexOf("--opt");
const so = {
  ...base0,
  ...(optArg < 0 ? {} : { graphOptimizationLevel: process.argv[optArg + 1] as "basic" }),
  ...(process.argv.includes("--noprepack")
    ? { extra: { session: { ...(base0.extra as { session: object }).session, disable_prepacking: "1" } } }
    : {}),
};
const gs = { quantAccuracy: 4 } as const;
const w = weightFn(m.weights);
let build = 0;
let encode = 0;
let session = 0;
const sessions: ort.InferenceSession[] = [];
const make = async (f: () => BuiltGraph) => {
  let a = performance.now();
  const g = f();
  let b = performance.now();
  build += b - a;
  a = b;
  const { bytes, files } = g.builder.encode(g.name, { external: true });
  b = performance.now();
  encode += b - a;
  a = b;
  sessions.push(await createSession(bytes, { ...so, externalData: files }, g.name));
  session += performance.now() - a;
};
const bi = process.argv.indexOf("--blocks");
const nBlocks = bi < 0 ? m.config.nLayers : Number(process.argv[bi + 1]);
for (let l = 0; l < nBlocks; l++) {
  await make(() => attnGraph(m.config, w, l, gs));
  await make(() => mlpGraph(m.config, w, l, gs));
  if (l === 0)
    process.stdout.write(
      `block 0: build ${(build / 1000).toFixed(2)} encode ${(encode / 1000).toFixed(2)} session ${(session / 1000).toFixed(2)} s rss ${rss()}\n`,
    );
}
await make(() => headGraph(m.config, w, gs));
lap();
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `engine CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s; engine: build ${(build / 1000).toFixed(2)} s, encode ${(encode / 1000).toFixed(2)} s, sessions ${(session / 1000).toFixed(2)} s; rss ${rss()}\n`,
);
collect();
process.stdout.write(`after gc: rss ${rss()}\n`);
