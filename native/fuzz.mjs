// Random op chains against the addon: every bad op must throw, nothing may abort or crash. Usage (after
// `npm run build`): node native/fuzz.mjs <seed> [verbose]; ITERS=n graphs (default 1500). The seeded test in
// test/runtime/ggml-addon.test.ts runs a smaller version of this.
import { GGML_TYPE as T, loadGgml } from "../dist/src/runtime/ggml/addon.js";
import { quantize } from "../dist/src/io/gguf-quant.js";
import { rng } from "../dist/src/model/random.js";
const seed = Number(process.argv[2] ?? 1);
const next = rng(seed);
const pick = (xs) => xs[Math.floor(next() * xs.length)];
const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
const ggml = loadGgml();
const be = ggml.backend(int(1, 2));
const weights = [];
for (const type of [T.Q4_0, T.Q8_0, T.Q4_K, T.Q6_K, T.F16, T.F32, T.BF16]) {
  for (const mode of ["copy", "repack"]) {
    const K = type === T.Q4_K || type === T.Q6_K ? 256 : pick([32, 64]); const N = pick([2, 4, 32]);
    weights.push(be.weight(quantize(type, new Float32Array(K * N).map(() => next() - 0.5)), 0, type, [K, N], mode));
  }
}
const caches = [be.tensor(T.F16, [32, 6]), be.tensor(T.F32, [32, 6]), be.tensor(T.I32, [4]), be.tensor(T.F32, [32, 4, 2])];
const small = () => pick([1, 2, 3, 4, 6, 32, 64, 256]);
let ok = 0, errs = 0, computes = 0, cerrs = 0;
const msgs = new Map();
const count = (e) => { const k = e.message.slice(0, 40); msgs.set(k, (msgs.get(k) ?? 0) + 1); };
for (let it = 0; it < Number(process.env.ITERS ?? 1500); it++) {
  const g = be.graph(pick([40, 16384]));
  const nodes = [];
  const shapes = new Map();
  const add = (id) => { nodes.push(id); shapes.set(id, g.shape(id)); return id; };
  for (let k = 0; k < 3; k++) {
    const t = pick([T.F32, T.F32, T.F32, T.I32, T.F16]);
    const ne = Array.from({ length: int(1, 3) }, small); const n = ne.reduce((a, b) => a * b, 1);
    const data = t === T.F32 ? new Float32Array(n).map(() => next() * 4 - 2) : t === T.I32 ? new Int32Array(n).map(() => int(-1, 40)) : new Uint16Array(n).fill(0x3c00);
    try { add(g.input(t, ne, data)); } catch (e) { errs++; count(e); }
  }
  for (const w of weights) if (next() < 0.3) try { add(g.ref(w)); } catch (e) { count(e); }
  for (const c of caches) if (next() < 0.3) add(g.ref(c));
  if (!nodes.length) continue;
  for (let k = 0; k < 15; k++) {
    const a = pick(nodes), b = pick(nodes), c = pick(nodes);
    const sa = shapes.get(a), sb = shapes.get(b);
    const op = pick(["get_rows","add","mul","scale","rms_norm","norm","mul_mat","mul_mat","silu","gelu","tanh","rope","soft_max","reshape","view","view","permute","cont","transpose","cpy","cpy"]);
    let srcs = [a], params = [];
    switch (op) {
      case "get_rows": case "add": case "mul": case "mul_mat": case "cpy": srcs = [a, b]; break;
      case "scale": case "rms_norm": case "norm": params = [pick([0.5, 1e-5, 2])]; break;
      case "rope": srcs = next() < 0.3 ? [a, b, c] : [a, b]; params = [pick([2, 4, 8, 32, 64, 3]), pick([0, 2, 2, 8]), 0, 10000, 1, pick([0, 1]), 1, 32, 1]; break;
      case "soft_max": srcs = next() < 0.5 ? [a, b] : [a]; params = [pick([1, 0.125]), pick([0, 0, 8])]; break;
      case "reshape": { const n = sa.reduce((x, y) => x * y, 1); params = pick([[n], [sa[1], sa[0]], [sa[0], sa[1] * sa[2], sa[3]], [small(), small()]]); break; }
      case "view": { const es = 4; params = [pick([sa[0], 1, 2, 32]), int(1, sa[1]), int(1, sa[2]), 1, pick([sa[0] * es, 2 * sa[0] * es, 64]), pick([sa[0] * sa[1] * es, 0, 128]), 0, pick([0, es, 18, 64, 4 * sa[0]])]; break; }
      case "permute": params = pick([[0, 2, 1, 3], [1, 0, 2, 3], [2, 0, 1, 3], [0, 1, 3, 2], [3, 2, 1, 0]]); break;
    }
    try { const id = add(g.op(op, srcs, params)); ok++; if (next() < 0.4) g.expand(id); } catch (e) { errs++; count(e); }
  }
  if (next() < 0.5) { try { g.expand(pick(nodes)); } catch (e) { count(e); } }
  try { g.compute(); computes++; for (const id of nodes) { try { g.read(id); } catch {} } if (next() < 0.3) g.compute(); } catch (e) { cerrs++; count(e); }
  if (next() < 0.5) g.free();
}
console.log(`seed ${seed}: ops ok ${ok}, op errors ${errs}, computes ${computes}, compute errors ${cerrs}`);
if (process.argv[3]) console.log([...msgs].sort((x, y) => y[1] - x[1]).slice(0, 40));
be.dispose();
