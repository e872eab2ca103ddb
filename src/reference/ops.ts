/**
 * The elementwise and row-wise kernels of the reference forward. Every kernel is a pure function of its inputs that
 * writes into a caller-owned output buffer (so a backward pass can sit beside each one later). Sums accumulate in
 * float64 (JS numbers) and are stored as float32.
 *
 * Shapes use N = rows (B*T tokens), D = model width, In/Out = linear fan-in/fan-out.
 */
import { f16ToF32, f32ToF16 } from "../io/gguf-quant.js";

/**
 * y = x W^T + b for HF-layout weights W [Out, In].
 *   x [N, In]   W [Out, In]   b [Out] | null   y [N, Out]
 * Each output is a dot product of two contiguous rows, which is the cache-friendly order for [Out, In] weights.
 */
export function linear(
  y: Float32Array,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  n: number,
  nIn: number,
  nOut: number,
): void {
  for (let r = 0; r < n; r++) {
    const xo = r * nIn;
    const yo = r * nOut;
    for (let o = 0; o < nOut; o++) {
      const wo = o * nIn;
      let s = b === null ? 0 : b[o]!;
      for (let i = 0; i < nIn; i++) s += x[xo + i]! * w[wo + i]!;
      y[yo + o] = s;
    }
  }
}

/**
 * C = A B for plain row-major matrices, i-k-j loop order (the inner loop walks rows of B and C contiguously).
 *   a [M, K]   b [K, N]   c [M, N]
 */
export function matmul(
  c: Float32Array,
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
): void {
  const acc = new Float64Array(n); // [N] one row of C in float64
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      const bo = p * n;
      for (let j = 0; j < n; j++) acc[j] += aip * b[bo + j]!;
    }
    c.set(acc, i * n);
  }
}

/** RMSNorm, HF LlamaRMSNorm: y = x / sqrt(mean(x^2) + eps) * w.   x, y [N, D]   w [D] */
export function rmsnorm(
  y: Float32Array,
  x: Float32Array,
  w: Float32Array,
  n: number,
  d: number,
  eps: number,
): void {
  for (let r = 0; r < n; r++) {
    const o = r * d;
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[o + i]! * x[o + i]!;
    // HF rounds the normalised x to float32 before multiplying by the weight.
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) y[o + i] = w[i]! * Math.fround(x[o + i]! * inv);
  }
}

/** LayerNorm (biased variance): y = (x - mean) / sqrt(var + eps) * w + b.   x, y [N, D]   w, b [D] */
export function layernorm(
  y: Float32Array,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  n: number,
  d: number,
  eps: number,
): void {
  for (let r = 0; r < n; r++) {
    const o = r * d;
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[o + i]!;
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[o + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) y[o + i] = (x[o + i]! - mean) * inv * w[i]! + b[i]!;
  }
}

/** silu(x) = x * sigmoid(x), in place.   x [any] */
export function siluInPlace(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = v / (1 + Math.exp(-v));
  }
}

/** GELU, tanh approximation (GPT-2 "gelu_new"), in place.   x [any] */
export function geluTanhInPlace(x: Float32Array): void {
  const k = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = 0.5 * v * (1 + Math.tanh(k * (v + 0.044715 * v * v * v)));
  }
}

/**
 * GELU as llama.cpp's CPU backend computes it: a lookup table indexed by the fp16 rounding of x, holding
 * fp16(gelu(x)); identity above 10 and 0 below -10. Only for matching llama.cpp's numerics in parity checks.
 */
export function geluGgmlF16InPlace(x: Float32Array): void {
  const k = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v <= -10) x[i] = 0;
    else if (v >= 10) x[i] = v;
    else {
      const h = Math.fround(f16ToF32(f32ToF16(v)));
      x[i] = f16ToF32(f32ToF16(0.5 * h * (1 + Math.tanh(k * h * (1 + 0.044715 * h * h)))));
    }
  }
}

/** a *= b elementwise, in place.   a, b [same] */
export function mulInPlace(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! * b[i]!;
}

/**
 * Numerically stable softmax of x[off .. off+n), in place. Entries equal to -Infinity get probability 0;
 * a row that is all -Infinity becomes all zeros (a padded query that may attend to nothing).
 */
export function softmaxInPlace(x: Float32Array, off: number, n: number): void {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) if (x[off + i]! > m) m = x[off + i]!;
  if (m === Number.NEGATIVE_INFINITY) {
    x.fill(0, off, off + n);
    return;
  }
  let s = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[off + i]! - m);
    x[off + i] = e;
    s += e;
  }
  for (let i = 0; i < n; i++) x[off + i] = x[off + i]! / s;
}
