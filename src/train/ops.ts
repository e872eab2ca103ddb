/**
 * The trainer's pointwise and row-wise kernels, each forward beside its backward (llm.c style). Backward kernels
 * ADD into gradient buffers (dx +=, dw +=), so residual branches and shared weights accumulate naturally.
 * N = rows (tokens), D = width, V = vocabulary.
 */
import type { RopeTable } from "../model/rope.js";

/** y = x / rms(x) * w; keeps rstd [N] for the backward.   x, y [N, D]   w [D] */
export function rmsnormForward(
  y: Float32Array,
  rstd: Float32Array,
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
    const inv = 1 / Math.sqrt(ss / d + eps);
    rstd[r] = inv;
    for (let i = 0; i < d; i++) y[o + i] = w[i]! * x[o + i]! * inv;
  }
}

/** dx += r (w dy) - x r^3 <w dy, x> / D;  dw += sum_rows dy x r. */
export function rmsnormBackward(
  dx: Float32Array,
  dw: Float32Array,
  dy: Float32Array,
  x: Float32Array,
  rstd: Float32Array,
  w: Float32Array,
  n: number,
  d: number,
): void {
  for (let r = 0; r < n; r++) {
    const o = r * d;
    const inv = rstd[r]!;
    let dot = 0;
    for (let i = 0; i < d; i++) {
      dot += w[i]! * dy[o + i]! * x[o + i]!;
      dw[i] += dy[o + i]! * x[o + i]! * inv;
    }
    const c = (inv * inv * inv * dot) / d;
    for (let i = 0; i < d; i++) dx[o + i] += inv * w[i]! * dy[o + i]! - c * x[o + i]!;
  }
}

/**
 * RoPE on every head of every row, in place (HF rotate_half layout). Token r sits at position r % T, counted from
 * the start of its document when docStart is given (docStart[r] = index in its row where its document begins).
 * sign = +1 rotates forward; sign = -1 applies the inverse rotation, which is the backward of a rotation.
 *   x [N, nHeads*hd]   docStart [N] | null
 */
export function rope(
  x: Float32Array,
  n: number,
  seq: number,
  nHeads: number,
  hd: number,
  table: RopeTable,
  sign: 1 | -1,
  docStart: Int32Array | null = null,
): void {
  const half = hd / 2;
  for (let r = 0; r < n; r++) {
    const p = ((r % seq) - (docStart === null ? 0 : docStart[r]!)) * half;
    for (let h = 0; h < nHeads; h++) {
      const off = r * nHeads * hd + h * hd;
      for (let i = 0; i < half; i++) {
        const c = table.cos[p + i]!;
        const s = sign * table.sin[p + i]!;
        const a = x[off + i]!;
        const b = x[off + i + half]!;
        x[off + i] = a * c - b * s;
        x[off + i + half] = b * c + a * s;
      }
    }
  }
}

/** out = silu(g) * u; keeps sig = sigmoid(g) for the backward.   g, u, sig, out [N, F] */
export function swigluForward(out: Float32Array, sig: Float32Array, g: Float32Array, u: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const v = g[i]!;
    const s = 1 / (1 + Math.exp(-v));
    sig[i] = s;
    out[i] = v * s * u[i]!;
  }
}

/** dg = dout u silu'(g), du = dout silu(g) (written, not added); silu'(g) = s (1 + g (1 - s)).   all [N, F] */
export function swigluBackward(
  dg: Float32Array,
  du: Float32Array,
  dout: Float32Array,
  g: Float32Array,
  u: Float32Array,
  sig: Float32Array,
): void {
  for (let i = 0; i < dout.length; i++) {
    const v = g[i]!;
    const s = sig[i]!;
    du[i] = dout[i]! * v * s;
    dg[i] = dout[i]! * u[i]! * s * (1 + v * (1 - s));
  }
}

/**
 * Causal softmax over attention scores, in place: row i of each [T, T] block keeps columns j0..i, scaled, where
 * j0 is the start of query i's document (docStart, per token of the batch row; 0 when null), so packed documents
 * do not see each other. Block b belongs to batch row floor(b / nHeads).
 *   s [BH, T, T]   docStart [B*T] | null
 */
export function causalSoftmaxForward(
  s: Float32Array,
  bh: number,
  seq: number,
  scale: number,
  docStart: Int32Array | null = null,
  nHeads = 1,
): void {
  for (let b = 0; b < bh; b++) {
    const row = Math.floor(b / nHeads);
    for (let i = 0; i < seq; i++) {
      const o = (b * seq + i) * seq;
      const j0 = docStart === null ? 0 : docStart[row * seq + i]!;
      let m = Number.NEGATIVE_INFINITY;
      for (let j = j0; j <= i; j++) m = Math.max(m, s[o + j]! * scale);
      let sum = 0;
      for (let j = j0; j <= i; j++) {
        const e = Math.exp(s[o + j]! * scale - m);
        s[o + j] = e;
        sum += e;
      }
      for (let j = 0; j < j0; j++) s[o + j] = 0;
      for (let j = j0; j <= i; j++) s[o + j] = s[o + j]! / sum;
      for (let j = i + 1; j < seq; j++) s[o + j] = 0;
    }
  }
}

/** dS = scale P (dP - <dP, P>_row), in place over dp (masked entries have P = 0, so dS = 0).   p, dp [BH, T, T] */
export function causalSoftmaxBackward(
  dp: Float32Array,
  p: Float32Array,
  bh: number,
  seq: number,
  scale: number,
) {
  for (let b = 0; b < bh; b++) {
    for (let i = 0; i < seq; i++) {
      const o = (b * seq + i) * seq;
      let dot = 0;
      for (let j = 0; j <= i; j++) dot += dp[o + j]! * p[o + j]!;
      for (let j = 0; j <= i; j++) dp[o + j] = scale * p[o + j]! * (dp[o + j]! - dot);
      for (let j = i + 1; j < seq; j++) dp[o + j] = 0;
    }
  }
}

/**
 * Weighted mean cross-entropy over rows whose target is >= 0 (weight 1 each when `weights` is null); turns logits
 * into dlogits in place, w_r (softmax - onehot) / sum(w). Returns the mean loss (0 when no row counts).
 *   logits [N, V]   targets [N]   weights [N] | null
 */
export function crossEntropyForwardBackward(
  logits: Float32Array,
  targets: Int32Array,
  weights: Float32Array | null,
  n: number,
  v: number,
): number {
  let count = 0;
  for (let r = 0; r < n; r++) if (targets[r]! >= 0) count += weights === null ? 1 : weights[r]!;
  let loss = 0;
  for (let r = 0; r < n; r++) {
    const o = r * v;
    const t = targets[r]!;
    const w = weights === null ? 1 : weights[r]!;
    if (t < 0 || count === 0) {
      logits.fill(0, o, o + v);
      continue;
    }
    let m = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < v; i++) m = Math.max(m, logits[o + i]!);
    const lt = logits[o + t]!;
    let sum = 0;
    for (let i = 0; i < v; i++) {
      const e = Math.exp(logits[o + i]! - m);
      logits[o + i] = e;
      sum += e;
    }
    loss += w * (Math.log(sum) + m - lt);
    const k = w / sum / count;
    for (let i = 0; i < v; i++) logits[o + i] = logits[o + i]! * k;
    logits[o + t] -= w / count;
  }
  return count === 0 ? 0 : loss / count;
}

/** [B, T, H, hd] <-> [B, H, T, hd] (toHeads = true goes left to right). */
export function splitHeads(
  out: Float32Array,
  x: Float32Array,
  b: number,
  seq: number,
  h: number,
  hd: number,
  toHeads: boolean,
): void {
  for (let bi = 0; bi < b; bi++) {
    for (let t = 0; t < seq; t++) {
      for (let hi = 0; hi < h; hi++) {
        const flat = ((bi * seq + t) * h + hi) * hd; // [B, T, H, hd]
        const heads = ((bi * h + hi) * seq + t) * hd; // [B, H, T, hd]
        if (toHeads) for (let i = 0; i < hd; i++) out[heads + i] = x[flat + i]!;
        else for (let i = 0; i < hd; i++) out[flat + i] = x[heads + i]!;
      }
    }
  }
}

/** a += b.   a, b [same] */
export function addTo(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i]!;
}
