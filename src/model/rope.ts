/**
 * Rotary position embeddings (RoPE), HF layout: a head vector of size hd is split into a first half and a second
 * half, and pair i is (x[i], x[i + hd/2]) rotated by angle pos * invFreq[i] ("rotate_half"). Note that GGUF llama
 * weights use the interleaved layout; their loader permutes q/k rows so that every engine sees the HF layout.
 *
 * Shared by the reference forward and the ONNX graph builder, so both use the same frequencies and tables.
 */
import { SteerlabError } from "../errors.js";
import type { ModelConfig, RopeScaling } from "./config.js";

/**
 * Inverse frequencies [hd/2]: theta^(-2i/hd), then the config's scaling. Rounded to float32 like HF, which keeps
 * inv_freq as a float32 buffer.
 *  - linear: every frequency divided by factor (same as dividing positions by factor).
 *  - llama3: long wavelengths (> originalMax/lowFreqFactor) divided by factor, short ones (< originalMax/
 *    highFreqFactor) kept, and the band in between interpolated smoothly in 1/wavelength.
 */
export function ropeInvFreq(c: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">): Float32Array {
  const hd = c.headDim;
  if (!Number.isInteger(hd) || hd <= 0 || hd % 2 !== 0 || !(c.ropeTheta > 0)) {
    throw new SteerlabError("bad_config", "rotary embeddings need an even head_dim and rope_theta > 0", {
      field: "head_dim/rope_theta",
      got: `head_dim ${hd}, rope_theta ${c.ropeTheta}`,
    });
  }
  const half = hd / 2;
  const out = new Float32Array(half); // [hd/2]
  for (let i = 0; i < half; i++) {
    // HF: 1 / base ** (arange(0, hd, 2).float() / hd), exponent in float32.
    out[i] = 1 / c.ropeTheta ** Math.fround((2 * i) / hd);
  }
  return applyScaling(out, c.ropeScaling);
}

function applyScaling(inv: Float32Array, s: RopeScaling | null): Float32Array {
  if (s === null) return inv;
  if (!(s.factor > 0)) {
    throw new SteerlabError("bad_config", "rope_scaling.factor must be > 0", {
      field: "rope_scaling.factor",
      got: String(s.factor),
    });
  }
  if (s.type === "linear") return inv.map((f) => f / s.factor);
  const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: old } = s;
  if (!(hi > lo)) {
    throw new SteerlabError("bad_config", "llama3 rope scaling needs high_freq_factor > low_freq_factor", {
      field: "rope_scaling.high_freq_factor",
      got: `low ${lo}, high ${hi}`,
    });
  }
  const lowFreqWavelen = old / lo; // wavelengths longer than this are fully scaled
  const highFreqWavelen = old / hi; // wavelengths shorter than this are kept
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / factor;
    const smooth = (old / wavelen - lo) / (hi - lo);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/** cos and sin of pos * invFreq[i], each [nPos, hd/2] row-major, rounded to float32. */
export interface RopeTable {
  nPos: number;
  half: number;
  cos: Float32Array; // [nPos, hd/2]
  sin: Float32Array; // [nPos, hd/2]
}

export function ropeTable(
  c: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">,
  nPos: number,
): RopeTable {
  const inv = ropeInvFreq(c);
  const half = inv.length;
  const cos = new Float32Array(nPos * half);
  const sin = new Float32Array(nPos * half);
  for (let p = 0; p < nPos; p++) {
    for (let i = 0; i < half; i++) {
      // HF multiplies float32 inv_freq by float32 positions, so the angle itself is a float32.
      const a = Math.fround(p * inv[i]!);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { nPos, half, cos, sin };
}

/**
 * Rotate one head vector in place: x[off .. off+hd) at position pos (HF rotate_half layout):
 *   y[i]        = x[i] cos - x[i+half] sin
 *   y[i+half]   = x[i+half] cos + x[i] sin
 */
export function applyRope(x: Float32Array, off: number, pos: number, t: RopeTable): void {
  if (pos < 0 || pos >= t.nPos) {
    throw new SteerlabError("bad_input", `position ${pos} is beyond the rotary table`, {
      expected: `a position < ${t.nPos}`,
      got: String(pos),
    });
  }
  const h = t.half;
  const r = pos * h;
  for (let i = 0; i < h; i++) {
    const c = t.cos[r + i]!;
    const s = t.sin[r + i]!;
    const a = x[off + i]!;
    const b = x[off + i + h]!;
    x[off + i] = a * c - b * s;
    x[off + i + h] = b * c + a * s;
  }
}
