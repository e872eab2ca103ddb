/**
 * The ggml addon (native/ggml_addon.cc through src/runtime/ggml/addon.ts) against independent oracles:
 *  - mul_mat of every weight type steerlab reads, on bytes made by steerlab's own quantizers (src/io/gguf-quant.ts),
 *    against an f64 matmul on steerlab's dequantized weights. ggml's CPU kernels quantize the activations to the
 *    weight type's "vec_dot_type" first (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants; f16
 *    and bf16 for F16/BF16), so two checks per type:
 *      1. the error is within what that activation rounding can cause (a bound from the activations' block maxima);
 *      2. against the same matmul on activations rounded here the way ggml's x86 quantizers do (written out below),
 *         the error is f32 accumulation only (1e-5 of sum |w x|). F32 weights: 1e-5 of sum |w x| against the f64
 *         matmul.
 *  - map / copy / repack of one file give the same products (map and copy bit for bit; repack, which runs other
 *    kernels (AMX, CPU_REPACK), within check 2's tolerance).
 *  - rope (NORMAL, NEOX, partial, frequency factors), soft_max with masks, get_rows, cpy into a cache view against
 *    values computed here with Math.cos/Math.exp.
 *  - bad input throws an Error naming the op and shapes, and the process lives on; a disposed backend throws.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { bf16ToF32, dequantize, f16ToF32, f32ToBf16, f32ToF16, quantize } from "../../src/io/gguf-quant.js";
import { rng } from "../../src/model/random.js";
import {
  type GgmlBackend,
  type GgmlTensor,
  ggmlAvailable,
  loadGgml,
  GGML_TYPE as T,
} from "../../src/runtime/ggml/addon.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-ggml-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// node-llama-cpp (a dev dependency) ships ggml for this platform, so the addon must have been built by `npm ci`:
// a missing addon fails here rather than skipping.
const available = ggmlAvailable();
assert.deepEqual(available, { ok: true }, `ggml addon unavailable: ${!available.ok && available.why}`);
const ggml = loadGgml();

function gaussian(next: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() + next() - 2) * scale;
  return out;
}

/** Weight rows of varied scale (as real weights), K values each, N rows. */
function weights(seed: number, K: number, N: number): Float32Array {
  const next = rng(seed);
  const w = gaussian(next, K * N);
  for (let n = 0; n < N; n++) {
    const s = 0.02 + 0.2 * next();
    for (let k = 0; k < K; k++) w[n * K + k]! *= s;
  }
  return w;
}

const f32 = Math.fround;
/** Round half to even, as ggml's nearest_int and _mm256_round_ps(_MM_ROUND_NEAREST). */
function rne(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
const viaF16 = (x: number) => f16ToF32(f32ToF16(x));

/** Activations as ggml's x86 kernels see them, and (Q8_1) the per-block f16 sums s = d * sum(q). */
interface Rounded {
  x: Float32Array;
  s?: Float32Array;
  /** Bound on |x' - x| per element. */
  err: Float32Array;
}

/** quantize_row_q8_0 / q8_1 (AVX): d = amax/127 stored as f16, q = round(x * 127/amax). */
function roundQ8(x: Float32Array, withSums: boolean): Rounded {
  const out = new Float32Array(x.length);
  const err = new Float32Array(x.length);
  const s = new Float32Array(x.length / 32);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
    const d = f32(amax / 127);
    const id = amax ? f32(127 / amax) : 0;
    const d16 = viaF16(d);
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const q = rne(f32(x[b + j]! * id));
      sum += q;
      out[b + j] = q * d16;
      // rounding to the grid (d/2) plus d's own f16 rounding times |q| <= 127
      err[b + j] = amax / 254 + amax * 2 ** -11;
    }
    s[b / 32] = viaF16(f32(d * sum));
  }
  return withSums ? { x: out, s, err } : { x: out, err };
}

/** quantize_row_q8_K_ref: per 256 values, iscale = -127/max (max: the largest magnitude, signed). */
function roundQ8K(x: Float32Array): Rounded {
  const out = new Float32Array(x.length);
  const err = new Float32Array(x.length);
  for (let b = 0; b < x.length; b += 256) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 256; j++) {
      const a = Math.abs(x[b + j]!);
      if (a > amax) {
        amax = a;
        max = x[b + j]!;
      }
    }
    const iscale = amax ? f32(-127 / max) : 0;
    const d = amax ? f32(1 / iscale) : 0;
    for (let j = 0; j < 256; j++) {
      out[b + j] = Math.min(127, rne(f32(iscale * x[b + j]!))) * d;
      err[b + j] = amax / 254 + amax * 1e-6;
    }
  }
  return { x: out, err };
}

function roundElementwise(x: Float32Array, f: (v: number) => number, rel: number): Rounded {
  return { x: x.map(f), err: x.map((v) => Math.abs(v) * rel) };
}

const ACTIVATIONS: Record<number, (x: Float32Array) => Rounded> = {
  [T.F32]: (x) => ({ x, err: new Float32Array(x.length) }),
  [T.F16]: (x) => roundElementwise(x, viaF16, 2 ** -11),
  [T.BF16]: (x) => roundElementwise(x, (v) => bf16ToF32(f32ToBf16(v)), 2 ** -8),
  [T.Q4_0]: (x) => roundQ8(x, false),
  [T.Q5_0]: (x) => roundQ8(x, false),
  [T.Q8_0]: (x) => roundQ8(x, false),
  [T.Q4_1]: (x) => roundQ8(x, true),
  [T.Q5_1]: (x) => roundQ8(x, true),
  [T.Q2_K]: roundQ8K,
  [T.Q3_K]: roundQ8K,
  [T.Q4_K]: roundQ8K,
  [T.Q5_K]: roundQ8K,
  [T.Q6_K]: roundQ8K,
};

/** Byte offset of the f16 block minimum m in a Q4_1 / Q5_1 block (after d), and the block sizes. */
const MIN_BLOCK: Record<number, number> = { [T.Q4_1]: 20, [T.Q5_1]: 24 };

interface Expected {
  /** f64 matmul on the dequantized weights and the exact activations. */
  plain: Float64Array;
  /** The same on the activations ggml uses (Q8_1: with its f16 block sums in the offset term). */
  emulated: Float64Array;
  /** sum |w x| per output (the scale of f32 accumulation error). */
  scale: Float64Array;
  /** Bound on |plain - ggml| that the activation rounding allows. */
  bound: Float64Array;
}

/** Y[m, n] = sum_k W[n, k] X[m, k] (ggml: mul_mat(W [K, N], X [K, M]) -> [N, M]). */
function expected(
  type: number,
  bytes: Uint8Array,
  W: Float32Array,
  X: Float32Array,
  K: number,
  N: number,
  M: number,
) {
  const r = ACTIVATIONS[type]!(X);
  const out: Expected = {
    plain: new Float64Array(M * N),
    emulated: new Float64Array(M * N),
    scale: new Float64Array(M * N),
    bound: new Float64Array(M * N),
  };
  const blockBytes = MIN_BLOCK[type];
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let plain = 0;
      let emu = 0;
      let scale = 0;
      let bound = 0;
      for (let k = 0; k < K; k++) {
        const w = W[n * K + k]!;
        plain += w * X[m * K + k]!;
        emu += w * r.x[m * K + k]!;
        scale += Math.abs(w * X[m * K + k]!);
        bound += Math.abs(w) * r.err[m * K + k]!;
      }
      if (blockBytes !== undefined) {
        // Q4_1/Q5_1 x Q8_1: the offset term is m_w * s with s = d * sum(q) rounded to f16, not m_w * sum(x').
        for (let b = 0; b < K / 32; b++) {
          const o = (n * (K / 32) + b) * blockBytes;
          const mw = f16ToF32(bytes[o + 2]! | (bytes[o + 3]! << 8));
          let sx = 0;
          let amax = 0;
          for (let j = 0; j < 32; j++) {
            sx += r.x[m * K + b * 32 + j]!;
            amax = Math.max(amax, Math.abs(X[m * K + b * 32 + j]!));
          }
          emu += mw * (r.s![m * (K / 32) + b]! - sx);
          bound += Math.abs(mw) * 32 * amax * 2 ** -11;
        }
      }
      const i = m * N + n;
      out.plain[i] = plain;
      out.emulated[i] = emu;
      out.scale[i] = scale;
      out.bound[i] = bound + 1e-5 * scale;
    }
  }
  return out;
}

const TYPES: [string, number][] = [
  ["Q4_0", T.Q4_0],
  ["Q4_1", T.Q4_1],
  ["Q5_0", T.Q5_0],
  ["Q5_1", T.Q5_1],
  ["Q8_0", T.Q8_0],
  ["Q2_K", T.Q2_K],
  ["Q3_K", T.Q3_K],
  ["Q4_K", T.Q4_K],
  ["Q5_K", T.Q5_K],
  ["Q6_K", T.Q6_K],
  ["F16", T.F16],
  ["BF16", T.BF16],
  ["F32", T.F32],
];

/** One matmul on a fresh graph: W (a persistent tensor) times X [K, M]. */
function matmul(be: GgmlBackend, w: GgmlTensor, X: Float32Array, K: number, M: number): Float32Array {
  const g = be.graph();
  const y = g.op("mul_mat", [g.ref(w), g.input(T.F32, [K, M], X)]);
  g.expand(y);
  g.compute();
  const out = g.read(y);
  g.free();
  return out;
}

function maxRatio(got: Float32Array, want: Float64Array, tol: (i: number) => number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / tol(i));
  return worst;
}

describe("ggml addon: mul_mat of every weight type", () => {
  const be = ggml.backend(2);
  after(() => be.dispose());
  // 64 rows of 512: the AMX buffer takes N % 32 == 0; CPU_REPACK takes what AMX does not (checked below).
  const K = 512;
  const N = 64;
  const M = 3;
  const X = gaussian(rng(7), K * M);
  const HEADER = 96; // weights sit at an offset inside the file, as in a GGUF

  for (const [name, type] of TYPES) {
    test(name, () => {
      const Wf = weights(100 + type, K, N);
      const bytes = quantize(type, Wf);
      const W = dequantize(type, bytes, K * N);
      const file = join(dir, `${name}.bin`);
      const image = new Uint8Array(HEADER + bytes.length + 40);
      image.fill(0xa5);
      image.set(bytes, HEADER);
      writeFileSync(file, image);
      const map = be.mapFile(file);
      assert.equal(map.size, image.length);

      const want = expected(type, bytes, W, X, K, N, M);
      const results: Record<string, Float32Array> = {};
      for (const mode of ["map", "copy", "repack"] as const) {
        const w = be.weight(map, HEADER, type, [K, N], mode);
        assert.equal(w.type, type);
        assert.deepEqual(w.ne, [K, N]);
        results[mode] = matmul(be, w, X, K, M);
        w.free();
      }
      map.close();
      const got = results.copy!;
      assert.equal(got.length, M * N);
      if (type === T.F32) {
        const r = maxRatio(got, want.plain, (i) => 1e-5 * want.scale[i]!);
        assert.ok(r <= 1, `F32: error ${r} x 1e-5 sum|wx|`);
      } else {
        const b = maxRatio(got, want.plain, (i) => want.bound[i]!);
        assert.ok(b <= 1, `${name}: error ${b} x the activation-rounding bound`);
        const e = maxRatio(got, want.emulated, (i) => 1e-5 * want.scale[i]! + 1e-7);
        assert.ok(e <= 1, `${name}: error ${e} x 1e-5 sum|wx| against ggml's activation rounding`);
        // The rounding is visible: the emulated product is the better oracle for the quantized types.
        if (type !== T.F16 && type !== T.BF16) {
          assert.ok(
            maxRatio(got, want.plain, (i) => 1e-5 * want.scale[i]!) > 1,
            `${name}: no activation rounding seen`,
          );
        }
      }
      assert.deepEqual(results.map, got, `${name}: map and copy differ`);
      // Repacked kernels round the activations as above, or not at all (AMX's F16 kernel reads them in f32).
      const tight = (i: number) => 1e-5 * want.scale[i]! + 1e-7;
      const rr = Math.min(
        maxRatio(results.repack!, want.emulated, tight),
        maxRatio(results.repack!, want.plain, tight),
      );
      assert.ok(rr <= 1, `${name}: repack error ${rr} x 1e-5 sum|wx|`);
      const rb = maxRatio(results.repack!, want.plain, (i) => want.bound[i]!);
      assert.ok(rb <= 1, `${name}: repack error ${rb} x the activation-rounding bound`);
    });
  }

  test("repack uses the extra buffer types, copy and map do not", () => {
    const stats = () => be.stats().copied;
    const bytes = quantize(T.Q4_0, weights(5, K, N));
    const before = stats();
    const copy = be.weight(bytes, 0, T.Q4_0, [K, N], "copy");
    assert.equal((stats().CPU ?? 0) - (before.CPU ?? 0), bytes.length);
    const repacked = be.weight(bytes, 0, T.Q4_0, [K, N], "repack");
    const after = stats();
    if (ggml.extraBufferTypes.length > 0) {
      // The first extra type that takes a Q4_0 mul_mat with 64 rows: AMX where the CPU has it, else CPU_REPACK.
      const used = Object.keys(after).filter((k) => k !== "CPU");
      assert.equal(used.length, 1, JSON.stringify(after));
      assert.ok(ggml.extraBufferTypes.includes(used[0]!));
      // 24 rows: not a multiple of AMX's 32, CPU_REPACK's 8 fits.
      if (ggml.extraBufferTypes.includes("CPU_REPACK") && ggml.extraBufferTypes.includes("AMX")) {
        const small = be.weight(bytes, 0, T.Q4_0, [K, 24], "repack");
        assert.ok((be.stats().copied.CPU_REPACK ?? 0) > 0, JSON.stringify(be.stats().copied));
        small.free();
      }
    }
    copy.free();
    repacked.free();
    assert.deepEqual(stats(), {}, "freed weights are not counted");
  });
});

describe("ggml addon: ops", () => {
  const be = ggml.backend(1);
  after(() => be.dispose());

  function run(build: (g: ReturnType<GgmlBackend["graph"]>) => number): Float32Array {
    const g = be.graph();
    const y = build(g);
    g.expand(y);
    g.compute();
    return g.read(y);
  }

  function close(got: Float32Array, want: number[], tol: number, what: string) {
    assert.equal(got.length, want.length, what);
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
    }
  }

  // a: head dim D (ne0) x heads H (ne1) x tokens (ne2); positions per token.
  const D = 8;
  const H = 2;
  const POS = [0, 3, 17];
  const A = gaussian(rng(11), D * H * POS.length);

  /** Rotation of pairs (i0, i1) by pos * base^(-2i/nDims) / ff[i], in f64. */
  function ropeRef(neox: boolean, nDims: number, base: number, ff?: number[]): number[] {
    const out = Array.from(A);
    POS.forEach((p, t) => {
      for (let h = 0; h < H; h++) {
        const row = (t * H + h) * D;
        for (let i = 0; i < nDims / 2; i++) {
          const theta = (p * base ** ((-2 * i) / nDims)) / (ff ? ff[i]! : 1);
          const [i0, i1] = neox ? [i, i + nDims / 2] : [2 * i, 2 * i + 1];
          const x0 = A[row + i0]!;
          const x1 = A[row + i1]!;
          out[row + i0] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
          out[row + i1] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
        }
      }
    });
    return out;
  }

  const pos = () => new Int32Array(POS);
  for (const [mode, neox] of [
    [0, false],
    [2, true],
  ] as const) {
    test(`rope ${neox ? "NEOX" : "NORMAL"}: full, partial, frequency factors`, () => {
      const full = run((g) =>
        g.op(
          "rope",
          [g.input(T.F32, [D, H, POS.length], A), g.input(T.I32, [POS.length], pos())],
          [D, mode, 0, 100],
        ),
      );
      close(full, ropeRef(neox, D, 100), 2e-5, "full");
      // Only the first 4 dims rotate; the rest pass through.
      const partial = run((g) =>
        g.op(
          "rope",
          [g.input(T.F32, [D, H, POS.length], A), g.input(T.I32, [POS.length], pos())],
          [4, mode, 0, 100],
        ),
      );
      close(partial, ropeRef(neox, 4, 100), 2e-5, "partial");
      const ff = [1, 2.5, 8, 0.5];
      const scaled = run((g) =>
        g.op(
          "rope",
          [
            g.input(T.F32, [D, H, POS.length], A),
            g.input(T.I32, [POS.length], pos()),
            g.input(T.F32, [4], new Float32Array(ff)),
          ],
          [D, mode, 0, 100, 1, 0, 1, 32, 1],
        ),
      );
      close(scaled, ropeRef(neox, D, 100, ff), 2e-5, "freq factors");
    });
  }

  test("rope NORMAL and NEOX differ on the same input (the pairing matters)", () => {
    const a = ropeRef(false, D, 100);
    const b = ropeRef(true, D, 100);
    assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-2));
  });

  test("soft_max with scale and a causal mask (f32 and f16)", () => {
    const cols = 4;
    const rows = 3;
    const a = gaussian(rng(3), cols * rows, 2);
    const mask = new Float32Array(cols * rows);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) mask[r * cols + c] = c > r + 1 ? -Infinity : 0;
    const want: number[] = [];
    for (let r = 0; r < rows; r++) {
      const z = Array.from({ length: cols }, (_, c) => 0.5 * a[r * cols + c]! + mask[r * cols + c]!);
      const mx = Math.max(...z);
      const e = z.map((v) => Math.exp(v - mx));
      const s = e.reduce((p, q) => p + q, 0);
      want.push(...e.map((v) => v / s));
    }
    const viaMask = (type: number, data: ArrayBufferView) =>
      run((g) =>
        g.op("soft_max", [g.input(T.F32, [cols, rows], a), g.input(type, [cols, rows], data)], [0.5, 0]),
      );
    const f = viaMask(T.F32, mask);
    close(f, want, 1e-6, "f32 mask");
    assert.equal(f[3], 0, "masked entry");
    const half = new Uint16Array(mask.length).map((_, i) => f32ToF16(mask[i]!));
    close(viaMask(T.F16, half), want, 1e-6, "f16 mask");
    // Without the mask every entry is positive.
    const plain = run((g) => g.op("soft_max", [g.input(T.F32, [cols, rows], a)], [0.5]));
    assert.ok(plain.every((v) => v > 0));
  });

  test("soft_max: one mask [n_kv, T, 1, B] broadcast over the heads of [n_kv, T, H, B]", () => {
    const nkv = 3;
    const Tq = 2;
    const H = 2;
    const B = 2;
    const a = gaussian(rng(4), nkv * Tq * H * B);
    const mask = new Float32Array(nkv * Tq * B);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < Tq; t++) mask[(b * Tq + t) * nkv + ((t + b) % nkv)] = -Infinity;
    const got = run((g) =>
      g.op("soft_max", [g.input(T.F32, [nkv, Tq, H, B], a), g.input(T.F32, [nkv, Tq, 1, B], mask)], [1, 0]),
    );
    const want: number[] = [];
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < Tq; t++) {
          const row = ((b * H + h) * Tq + t) * nkv;
          const z = Array.from({ length: nkv }, (_, j) => a[row + j]! + mask[(b * Tq + t) * nkv + j]!);
          const mx = Math.max(...z);
          const e = z.map((v) => Math.exp(v - mx));
          const s = e.reduce((p, q) => p + q, 0);
          want.push(...e.map((v) => v / s));
        }
      }
    }
    close(got, want, 1e-6, "broadcast mask");
  });

  test("attention as llama.cpp builds it: mul_mat of cache views (strided src0) and permuted queries", () => {
    // cache [D, slots] F16 holding Hkv heads side by side in each row: K of head h at dims h*D .. h*D+D-1.
    const D = 4;
    const Hkv = 2;
    const slots = 6;
    const used = 4;
    const S = 3;
    const cache = be.tensor(T.F16, [D * Hkv, slots]);
    const k = gaussian(rng(51), D * Hkv * used);
    const fill = be.graph();
    const dst = fill.op(
      "view",
      [fill.ref(cache)],
      [D * Hkv, used, 1, 1, D * Hkv * 2, D * Hkv * 2 * used, 0, 0],
    );
    fill.expand(fill.op("cpy", [fill.input(T.F32, [D * Hkv, used], k), dst]));
    fill.compute();
    // q as the projection writes it: [D * Hkv, S] -> [D, Hkv, S] -> permute to [D, S, Hkv]
    const q = gaussian(rng(52), D * Hkv * S);
    const got = run((g) => {
      const kView = g.op(
        "view",
        [g.ref(cache)],
        [D, used, Hkv, 1, D * Hkv * 2, D * 2, D * Hkv * 2 * slots, 0],
      );
      const q3 = g.op("reshape", [g.input(T.F32, [D * Hkv, S], q)], [D, Hkv, S]);
      return g.op("mul_mat", [kView, g.op("permute", [q3], [0, 2, 1, 3])]);
    });
    assert.equal(got.length, used * S * Hkv);
    const want: number[] = [];
    for (let h = 0; h < Hkv; h++) {
      for (let s = 0; s < S; s++) {
        for (let t = 0; t < used; t++) {
          let acc = 0;
          for (let d = 0; d < D; d++)
            acc += viaF16(k[t * D * Hkv + h * D + d]!) * viaF16(q[s * D * Hkv + h * D + d]!);
          want.push(acc);
        }
      }
    }
    close(got, want, 1e-6, "kq");
    cache.free();
  });

  test("get_rows of a quantized table equals steerlab's dequantized rows", () => {
    const K = 256;
    const R = 10;
    for (const type of [T.Q4_K, T.Q6_K, T.Q8_0, T.F16]) {
      const bytes = quantize(type, weights(40 + type, K, R));
      const table = dequantize(type, bytes, K * R);
      const ids = [3, 0, 9, 3];
      const w = be.weight(bytes, 0, type, [K, R], "copy");
      const got = run((g) => g.op("get_rows", [g.ref(w), g.input(T.I32, [ids.length], new Int32Array(ids))]));
      const want = ids.flatMap((r) => Array.from(table.subarray(r * K, (r + 1) * K)));
      close(got, want, 0, `type ${type}`);
      w.free();
    }
  });

  test("norm, rms_norm, add, mul, scale, silu, gelu", () => {
    const n = 8;
    const x = gaussian(rng(21), n * 2);
    const b = gaussian(rng(22), n);
    const rows = (f: (r: number[]) => number[]) => [
      ...f(Array.from(x.subarray(0, n))),
      ...f(Array.from(x.subarray(n))),
    ];
    const input = (g: ReturnType<GgmlBackend["graph"]>) => g.input(T.F32, [n, 2], x);
    const rms = (r: number[]) => {
      const s = Math.sqrt(r.reduce((p, v) => p + v * v, 0) / n + 1e-5);
      return r.map((v) => v / s);
    };
    close(
      run((g) => g.op("rms_norm", [input(g)], [1e-5])),
      rows(rms),
      1e-5,
      "rms_norm",
    );
    const norm = (r: number[]) => {
      const mu = r.reduce((p, v) => p + v, 0) / n;
      const s = Math.sqrt(r.reduce((p, v) => p + (v - mu) ** 2, 0) / n + 1e-5);
      return r.map((v) => (v - mu) / s);
    };
    close(
      run((g) => g.op("norm", [input(g)], [1e-5])),
      rows(norm),
      1e-5,
      "norm",
    );
    close(
      run((g) => g.op("add", [input(g), g.input(T.F32, [n], b)])),
      rows((r) => r.map((v, i) => v + b[i]!)),
      1e-6,
      "add (broadcast)",
    );
    close(
      run((g) => g.op("mul", [input(g), g.input(T.F32, [n], b)])),
      rows((r) => r.map((v, i) => v * b[i]!)),
      1e-6,
      "mul (broadcast)",
    );
    close(
      run((g) => g.op("scale", [input(g)], [-3])),
      rows((r) => r.map((v) => -3 * v)),
      1e-6,
      "scale",
    );
    close(
      run((g) => g.op("silu", [input(g)])),
      rows((r) => r.map((v) => v / (1 + Math.exp(-v)))),
      1e-6,
      "silu",
    );
    close(
      run((g) => g.op("tanh", [input(g)])),
      rows((r) => r.map(Math.tanh)),
      1e-6,
      "tanh",
    );
    const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    close(
      run((g) => g.op("gelu", [input(g)])),
      rows((r) => r.map(gelu)),
      2e-3, // ggml_gelu reads an f16 table for f32 inputs
      "gelu",
    );
  });

  test("reshape, permute, transpose, cont, view", () => {
    // x: ne [3, 2, 2]; values 0..11 in memory order.
    const x = new Float32Array(12).map((_, i) => i);
    const at = (i0: number, i1: number, i2: number) => i0 + 3 * i1 + 6 * i2;
    // permute [1, 0, 2, 3] swaps ne0 and ne1: out ne [2, 3, 2], out[j0, j1, j2] = x[j1, j0, j2]
    const perm = run((g) => g.op("cont", [g.op("permute", [g.input(T.F32, [3, 2, 2], x)], [1, 0, 2, 3])]));
    const want: number[] = [];
    for (let j2 = 0; j2 < 2; j2++)
      for (let j1 = 0; j1 < 3; j1++) for (let j0 = 0; j0 < 2; j0++) want.push(at(j1, j0, j2));
    close(perm, want, 0, "permute");
    const tr = run((g) => g.op("transpose", [g.op("reshape", [g.input(T.F32, [12], x)], [3, 4])]));
    const wantT: number[] = [];
    for (let j1 = 0; j1 < 3; j1++) for (let j0 = 0; j0 < 4; j0++) wantT.push(j1 + 3 * j0);
    close(tr, wantT, 0, "transpose read strided");
    // view: the second row of every ne2 slice: ne [3, 1, 2], nb1 12, nb2 24, offset 12
    const v = run((g) => g.op("view", [g.input(T.F32, [3, 2, 2], x)], [3, 1, 2, 1, 12, 24, 48, 12]));
    close(v, [3, 4, 5, 9, 10, 11], 0, "view");
    const g = be.graph();
    assert.deepEqual(g.shape(g.op("reshape", [g.input(T.F32, [12], x)], [2, 3, 2])), [2, 3, 2, 1]);
  });

  test("cpy into a view of a persistent f16 cache, read back by a later graph", () => {
    const cache = be.tensor(T.F16, [4, 6]);
    const rows = gaussian(rng(5), 8);
    const g = be.graph();
    const view = g.op("view", [g.ref(cache)], [4, 2, 1, 1, 8, 16, 16, 2 * 8]);
    g.expand(g.op("cpy", [g.input(T.F32, [4, 2], rows), view]));
    g.compute();
    const h = be.graph();
    const all = h.op("cont", [h.ref(cache)]);
    h.expand(all);
    h.compute();
    const got = h.read(all);
    const want = new Array(24).fill(0);
    for (let i = 0; i < 8; i++) want[8 + i] = viaF16(rows[i]!);
    close(got, want, 0, "cache");
    assert.throws(() => g.read(view), /another graph was computed/);
    cache.free();
  });

  test("mul_mat broadcasts an f16 cache over query heads (grouped-query attention)", () => {
    const D = 4;
    const Tk = 5;
    const S = 2;
    const Hq = 4;
    const Hkv = 2;
    const k = gaussian(rng(31), D * Tk * Hkv);
    const q = gaussian(rng(32), D * S * Hq);
    const k16 = new Uint16Array(k.length).map((_, i) => f32ToF16(k[i]!));
    const got = run((g) =>
      g.op("mul_mat", [g.input(T.F16, [D, Tk, Hkv], k16), g.input(T.F32, [D, S, Hq], q)]),
    );
    // out [Tk, S, Hq]: query head h reads cache head h / (Hq / Hkv); the f16 kernel rounds q to f16 too.
    const want: number[] = [];
    for (let h = 0; h < Hq; h++) {
      const kv = Math.floor(h / (Hq / Hkv));
      for (let s = 0; s < S; s++) {
        for (let t = 0; t < Tk; t++) {
          let acc = 0;
          for (let d = 0; d < D; d++)
            acc += viaF16(k[(kv * Tk + t) * D + d]!) * viaF16(q[(h * S + s) * D + d]!);
          want.push(acc);
        }
      }
    }
    close(got, want, 1e-6, "kq");
  });

  test("a graph computes again; reads of unexpanded intermediates are refused", () => {
    const g = be.graph();
    const x = g.input(T.F32, [4], new Float32Array([1, 2, 3, 4]));
    const mid = g.op("scale", [x], [2]);
    const y = g.op("add", [mid, x]);
    g.expand(y);
    g.compute();
    close(g.read(y), [3, 6, 9, 12], 0, "first");
    g.compute();
    close(g.read(y), [3, 6, 9, 12], 0, "again");
    assert.throws(() => g.read(mid), /not passed to expand/);
    close(g.read(x), [1, 2, 3, 4], 0, "input");
  });
});

describe("ggml addon: errors are thrown, the process lives", () => {
  const be = ggml.backend(1);
  after(() => be.dispose());
  const q = quantize(T.Q4_0, weights(1, 64, 4)); // 2 blocks x 4 rows x 18 bytes

  test("weights: offset past the end, ne0 not a block multiple, bad type, bad mode", () => {
    assert.throws(
      () => be.weight(q, 1, T.Q4_0, [64, 4], "copy"),
      /weight: \[64,4,1,1\] q4_0 needs 144 bytes at offset 1/,
    );
    assert.throws(
      () => be.weight(q, 0, T.Q4_0, [64, 5], "copy"),
      /needs 180 bytes at offset 0 but the buffer has 144/,
    );
    assert.throws(
      () => be.weight(q, 0, T.Q4_0, [48, 3], "copy"),
      /ne\[0\] \(48\) must be a multiple of q4_0's block size 32/,
    );
    assert.throws(() => be.weight(q, 0, 4, [32], "copy"), /unsupported ggml type 4/);
    assert.throws(() => be.weight(q, 0, T.Q4_0, [64, 4], "map"), /needs a GgmlMap/);
    assert.throws(() => be.weight(q, 0, T.Q4_0, [64, 4], "mmap" as "map"), /mode must be/);
    assert.throws(() => be.weight(q, -32, T.Q4_0, [32], "copy"), /needs 18 bytes at offset -32/);
    assert.throws(() => be.weight(q, 0, T.Q4_0, [64, 0], "copy"), /ne\[1\] must be a positive integer/);
    assert.throws(() => be.mapFile(join(dir, "missing.gguf")), /cannot open .*missing\.gguf: No such file/);
    const file = join(dir, "short.bin");
    writeFileSync(file, q.subarray(0, 100));
    const map = be.mapFile(file);
    assert.throws(
      () => be.weight(map, 0, T.Q4_0, [64, 4], "map"),
      /needs 144 bytes at offset 0 but .*short\.bin has 100/,
    );
    map.close();
    assert.throws(() => be.weight(map, 0, T.Q4_0, [32], "copy"), /was closed/);
  });

  test("ops: shapes and types are checked before ggml sees them", () => {
    const w = be.weight(q, 0, T.Q4_0, [64, 4], "copy");
    const g = be.graph();
    const W = g.ref(w);
    const x = g.input(T.F32, [32, 2], new Float32Array(64));
    assert.throws(
      () => g.op("mul_mat", [W, x]),
      /mul_mat: a \[64,4,1,1\] q4_0 and b \[32,2,1,1\] f32 do not match/,
    );
    assert.throws(
      () => g.op("view", [x], [32, 2, 1, 1, 128, 256, 256, 4]),
      /view: .* reaches past the end of a \[32,2,1,1\] f32/,
    );
    assert.throws(() => g.op("view", [x], [16, 5, 1, 1, 64, 320, 320, 0]), /reaches past the end/);
    assert.throws(() => g.op("view", [x], [8, 2, 1, 1, 128, 256, 256, 200]), /reaches past the end/);
    assert.equal(
      g.shape(g.op("view", [x], [16, 4, 1, 1, 64, 256, 256, 0]))[1],
      4,
      "a strided view that fits",
    );
    assert.throws(
      () => g.op("reshape", [x], [5, 13]),
      /reshape: a \[32,2,1,1\] f32 has 64 elements, the new shape .* has 65/,
    );
    assert.throws(() => g.op("permute", [x], [0, 0, 1, 2]), /permutation/);
    assert.throws(() => g.op("add", [x, g.input(T.F32, [3], new Float32Array(3))]), /does not broadcast/);
    const pos = g.input(T.I32, [3], new Int32Array(3));
    assert.throws(
      () => g.op("rope", [x, pos], [32, 0]),
      /pos .* must be a vector of a.ne\[2\] = 1 positions/,
    );
    assert.throws(() => g.op("rope", [x, g.input(T.I32, [1], new Int32Array(1))], [32, 8]), /mode must be 0/);
    assert.throws(
      () => g.op("soft_max", [x, g.input(T.F32, [16, 2], new Float32Array(32))]),
      /mask .* does not fit/,
    );
    assert.throws(() => g.op("get_rows", [W, x]), /ids \[32,2,1,1\] f32 must be i32/);
    assert.throws(
      () => g.op("cpy", [x, g.input(T.F32, [3], new Float32Array(3))]),
      /cpy: a .* has 64 elements/,
    );
    // contiguous by ggml_is_contiguous (dims of size 1 skipped) but not "padded 1d" as ggml_scale asserts
    assert.throws(
      () => g.op("scale", [g.op("view", [x], [32, 1, 1, 1, 128, 0, 0, 0])], [2]),
      /scale: .* contiguous/,
    );
    const ids = g.input(T.I32, [2], new Int32Array([0, 1]));
    assert.throws(() => g.op("get_rows", [W, g.op("cont", [ids])]), /ids must be a graph input/);
    assert.throws(() => g.op("view", [x], [32, 2, 1, 1, 2 ** 60, 0, 0, 0]), /below 2\^50/);
    assert.throws(() => g.input(T.F32, [2 ** 30, 2 ** 30], new Float32Array(1)), /more than 2\^48 elements/);
    assert.throws(() => g.op("nope" as "add", [x]), /unknown op "nope"/);
    assert.throws(() => g.op("scale", [99]), /no node 99/);
    assert.throws(() => g.input(T.F32, [4], new Float32Array(3)), /needs 16 bytes of data, got 12/);
    assert.throws(() => g.compute(), /nothing to compute/);
    // Ids are checked at compute(), before ggml would assert on them.
    const h = be.graph();
    const rows = h.op("get_rows", [h.ref(w), h.input(T.I32, [2], new Int32Array([1, 4]))]);
    h.expand(rows);
    assert.throws(() => h.compute(), /get_rows: id 4 is out of range for a table of 4 rows/);
    // The backend still works.
    const ok = be.graph();
    const y = ok.op("mul_mat", [ok.ref(w), ok.input(T.F32, [64, 1], new Float32Array(64).fill(1))]);
    ok.expand(y);
    ok.compute();
    assert.equal(ok.read(y).length, 4);
    w.free();
    assert.throws(() => ok.compute(), /a tensor this graph uses was freed/);
    assert.throws(() => ok.ref(w), /freed/);
  });

  test("a repacked weight is refused anywhere but as mul_mat's weight", {
    skip: ggml.extraBufferTypes.length === 0,
  }, () => {
    const bytes = quantize(T.Q4_0, weights(9, 256, 64));
    const w = be.weight(bytes, 0, T.Q4_0, [256, 64], "repack");
    assert.ok(
      Object.keys(be.stats().copied).some((k) => k !== "CPU"),
      "it was repacked",
    );
    const g = be.graph();
    assert.throws(
      () => g.op("get_rows", [g.ref(w), g.input(T.I32, [1], new Int32Array(1))]),
      /repacked weight/,
    );
    assert.throws(() => g.op("view", [g.ref(w)], [256, 1, 1, 1, 144, 144, 144, 0]), /repacked weight/);
    w.free();
  });

  test("map close waits for the tensors in it; stats count what is held", () => {
    const file = join(dir, "held.bin");
    writeFileSync(file, q);
    const map = be.mapFile(file);
    const w = be.weight(map, 0, T.Q4_0, [64, 4], "map");
    assert.equal(be.stats().mapped, q.length);
    map.close();
    assert.equal(be.stats().mapped, q.length, "still mapped: a tensor points into it");
    const g = be.graph();
    const y = g.op("mul_mat", [g.ref(w), g.input(T.F32, [64, 1], new Float32Array(64).fill(1))]);
    g.expand(y);
    g.compute();
    const want = dequantize(T.Q4_0, q, 256);
    for (let n = 0; n < 4; n++) {
      const s = want.subarray(n * 64, (n + 1) * 64).reduce((p, v) => p + v, 0);
      assert.ok(Math.abs(g.read(y)[n]! - s) <= 0.01 * (1 + Math.abs(s)));
    }
    w.free();
    assert.equal(be.stats().mapped, 0);
    const kv = be.tensor(T.F32, [16, 4]);
    assert.equal(be.stats().tensors, 256);
    kv.free();
    assert.equal(be.stats().tensors, 0);
    assert.ok(be.stats().compute > 0);
  });

  test("repack from a map gives the mapped pages back (madvise), copy does not", () => {
    // The mapping's resident bytes, from /proc/self/smaps (Linux).
    const resident = (path: string) => {
      const lines = readFileSync("/proc/self/smaps", "utf8").split("\n");
      let total = 0;
      let inside = false;
      for (const line of lines) {
        if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inside = line.endsWith(path);
        else if (inside && line.startsWith("Rss:")) total += Number(line.split(/\s+/)[1]) * 1024;
      }
      return total;
    };
    const K = 4096;
    const N = 256;
    const bytes = quantize(T.Q8_0, weights(77, K, N)); // 1.1 MB
    const file = join(dir, "advise.bin");
    writeFileSync(file, bytes);
    const map = be.mapFile(file);
    const copy = be.weight(map, 0, T.Q8_0, [K, N], "copy");
    assert.ok(resident(file) >= 0.9 * bytes.length, `copy read every page: ${resident(file)}`);
    const repacked = be.weight(map, 0, T.Q8_0, [K, N], "repack");
    assert.ok(resident(file) <= 8192, `repack released the pages: ${resident(file)} still resident`);
    assert.equal(be.stats().mapped, bytes.length, "the mapping itself stays");
    copy.free();
    repacked.free();
    map.close();
    assert.equal(be.stats().mapped, 0);
  });

  test("dispose, then every use throws", () => {
    const b = ggml.backend(1);
    const w = b.weight(q, 0, T.Q4_0, [64, 4], "copy");
    const g = b.graph();
    const y = g.op("mul_mat", [g.ref(w), g.input(T.F32, [64, 1], new Float32Array(64))]);
    g.expand(y);
    b.dispose();
    assert.throws(() => g.compute(), /disposed/);
    assert.throws(() => b.graph(), /disposed/);
    assert.throws(() => b.weight(q, 0, T.Q4_0, [64, 4], "copy"), /disposed/);
    assert.throws(() => b.stats(), /disposed/);
    w.free(); // harmless after dispose
    w.free(); // and twice
    b.dispose();
    const c = ggml.backend(1);
    const file = join(dir, "twice.bin");
    writeFileSync(file, q);
    const map = c.mapFile(file);
    map.close();
    map.close();
    c.dispose();
    map.close();
  });

  test("random op chains (seeded): every bad one throws an Error naming the op, none aborts the process", () => {
    const next = rng(2024);
    const pick = <X>(xs: readonly X[]): X => xs[Math.floor(next() * xs.length)]!;
    const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
    const b = ggml.backend(1);
    const persistent: GgmlTensor[] = [];
    for (const type of [T.Q4_0, T.Q8_0, T.Q4_K, T.F16, T.F32]) {
      for (const mode of ["copy", "repack"] as const) {
        const K = type === T.Q4_K ? 256 : pick([32, 64]);
        const N = pick([2, 4, 32]);
        persistent.push(b.weight(quantize(type, gaussian(next, K * N)), 0, type, [K, N], mode));
      }
    }
    persistent.push(b.tensor(T.F16, [32, 6]), b.tensor(T.F32, [32, 4, 2]), b.tensor(T.I32, [4]));
    const small = () => pick([1, 2, 3, 4, 6, 32, 64, 256]);
    const OPS = [
      "get_rows",
      "add",
      "mul",
      "scale",
      "rms_norm",
      "norm",
      "mul_mat",
      "silu",
      "gelu",
      "tanh",
      "rope",
    ] as const;
    const MORE = ["soft_max", "reshape", "view", "permute", "cont", "transpose", "cpy"] as const;
    let built = 0;
    let refused = 0;
    let computed = 0;
    for (let it = 0; it < 300; it++) {
      const g = b.graph(pick([40, 16384]));
      const nodes: number[] = [];
      for (let k = 0; k < 3; k++) {
        const type = pick([T.F32, T.F32, T.I32, T.F16]);
        const ne = Array.from({ length: int(1, 3) }, small);
        const n = ne.reduce((x, y) => x * y, 1);
        const data =
          type === T.F32
            ? gaussian(next, n)
            : type === T.I32
              ? new Int32Array(n).map(() => int(-1, 40))
              : new Uint16Array(n).fill(0x3c00);
        nodes.push(g.input(type, ne, data));
      }
      for (const t of persistent) if (next() < 0.3) nodes.push(g.ref(t));
      for (let k = 0; k < 15; k++) {
        const op = pick([...OPS, ...MORE]);
        const [a, c, d] = [pick(nodes), pick(nodes), pick(nodes)];
        const sa = g.shape(a);
        const na = sa.reduce((x, y) => x * y, 1);
        const arity: Record<string, number[]> = {
          get_rows: [a, c],
          add: [a, c],
          mul: [a, c],
          mul_mat: [a, c],
          cpy: [a, c],
        };
        const srcs = arity[op] ?? (op === "rope" || op === "soft_max" ? [a, c, d].slice(0, int(1, 3)) : [a]);
        const params: Record<string, number[]> = {
          scale: [2],
          rms_norm: [1e-5],
          norm: [1e-5],
          rope: [pick([2, 4, 8, 32, 3]), pick([0, 2, 8]), 0, 10000, 1, 0, 1, 32, 1],
          soft_max: [pick([1, 0.125]), pick([0, 8])],
          reshape: pick([[na], [sa[1]!, sa[0]!], [small(), small()]]),
          view: [
            pick([sa[0]!, 2, 32]),
            int(1, sa[1]!),
            int(1, sa[2]!),
            1,
            pick([4 * sa[0]!, 64]),
            pick([0, 128]),
            0,
            pick([0, 4, 18, 64]),
          ],
          permute: pick([
            [0, 2, 1, 3],
            [1, 0, 2, 3],
            [3, 2, 1, 0],
          ]),
        };
        try {
          const id = g.op(op, srcs, params[op]);
          nodes.push(id);
          built++;
          if (next() < 0.4) g.expand(id);
        } catch (e) {
          refused++;
          assert.ok(e instanceof Error && e.message.startsWith(`${op}: `), `${op}: ${(e as Error).message}`);
        }
      }
      try {
        g.compute();
        computed++;
        for (const id of nodes) {
          try {
            assert.ok(g.read(id) instanceof Float32Array);
          } catch (e) {
            assert.match((e as Error).message, /^read: /);
          }
        }
      } catch (e) {
        assert.match((e as Error).message, /^(compute|get_rows): /);
      }
      g.free();
    }
    // The chains exercised both sides.
    assert.ok(
      built > 1000 && refused > 1000 && computed > 200,
      `${built} built, ${refused} refused, ${computed} computed`,
    );
    b.dispose();
  });

  test("backend arguments", () => {
    assert.throws(() => ggml.backend(0), /threads must be 1 to 512/);
    assert.throws(() => ggml.backend(1.5), /must be an integer/);
  });
});
