/**
 * Encoders for the ggml block types beyond Q8_0 / Q4_0: Q4_1, Q5_0, Q5_1 and the K-quants Q2_K .. Q6_K, so
 * steerlab can write the files users run (test files and the bench's Q4_K models). Layouts follow ggml-common.h
 * and are the exact inverses of the decoders in gguf-dequant.ts (a test round-trips them). The scale search is
 * the simple one (min/max per block, sub-scales rounded to the super-block scale), not llama.cpp's iterative
 * make_qkx2_quants: files decode the same in llama.cpp, they are just slightly less accurate than llama-quantize's.
 */
import { SteerlabError } from "../errors.js";

type Encoder = (x: Float32Array, out: Uint8Array, f16: (v: number) => number) => void;

/** Round half away from zero, as ggml's nearest_int / roundf. */
const near = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v));
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

function put16(out: Uint8Array, o: number, v: number): void {
  out[o] = v & 255;
  out[o + 1] = v >>> 8;
}

function minMax(x: Float32Array, a: number, n: number): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = a; i < a + n; i++) {
    lo = Math.min(lo, x[i]!);
    hi = Math.max(hi, x[i]!);
  }
  return [lo, hi];
}

/** The signed value of largest magnitude in x[a, a + n). */
function signedMax(x: Float32Array, a: number, n: number): number {
  let m = 0;
  for (let i = a; i < a + n; i++) if (Math.abs(x[i]!) > Math.abs(m)) m = x[i]!;
  return m;
}

/** Q4_1 / Q5_1 (32 values): d, m f16, x = d * q + m with q in [0, 2^bits). */
function legacyMin(bits: 4 | 5): Encoder {
  const bytes = bits === 4 ? 20 : 24;
  const top = (1 << bits) - 1;
  return (x, out, f16) => {
    for (let b = 0, o = 0; b < x.length; b += 32, o += bytes) {
      const [lo, hi] = minMax(x, b, 32);
      const d = (hi - lo) / top;
      const id = d ? 1 / d : 0;
      put16(out, o, f16(d));
      put16(out, o + 2, f16(lo));
      const q = (j: number) => Math.min(top, Math.trunc((x[b + j]! - lo) * id + 0.5));
      packLegacy(out, bits === 4 ? o + 4 : o + 8, bits === 5 ? o + 4 : -1, q);
    }
  };
}

/** Q5_0 (32 values): d f16, x = d * (q - 16). */
const q50: Encoder = (x, out, f16) => {
  for (let b = 0, o = 0; b < x.length; b += 32, o += 22) {
    const d = signedMax(x, b, 32) / -16;
    const id = d ? 1 / d : 0;
    put16(out, o, f16(d));
    packLegacy(out, o + 6, o + 2, (j) => Math.min(31, Math.trunc(x[b + j]! * id + 16.5)));
  }
};

/** Low nibbles of values j and j + 16 share byte j of qs; 5th bits go to the u32 at qh (bit j, bit j + 16). */
function packLegacy(out: Uint8Array, qs: number, qh: number, q: (j: number) => number): void {
  let h = 0;
  for (let j = 0; j < 16; j++) {
    const a = q(j);
    const c = q(j + 16);
    out[qs + j] = (a & 15) | ((c & 15) << 4);
    h |= ((a >>> 4) & 1) << j;
    h |= ((c >>> 4) & 1) << (j + 16);
  }
  if (qh >= 0) for (let k = 0; k < 4; k++) out[qh + k] = (h >>> (8 * k)) & 255;
}

/**
 * Sub-block scales and mins of a K-quant super-block at x[b..]: per sub-block of `n` values, scale = (max - min) /
 * top and min <= 0 (as ggml keeps it), written to `scale` and `min`; returns the super-block's d and dmin as f16
 * bits, each the largest of them in `levels` steps. Buffers are the caller's: this runs once per 256 weights.
 */
function kScales(
  x: Float32Array,
  b: number,
  n: number,
  top: number,
  levels: number,
  f16: (v: number) => number,
  scale: Float64Array,
  min: Float64Array,
): [number, number] {
  let maxScale = Number.NEGATIVE_INFINITY;
  let maxMin = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < 256 / n; i++) {
    const [lo, hi] = minMax(x, b + i * n, n);
    min[i] = Math.min(0, lo);
    scale[i] = (hi - min[i]!) / top;
    maxScale = Math.max(maxScale, scale[i]!);
    maxMin = Math.max(maxMin, -min[i]!);
  }
  return [f16(maxScale / levels), f16(maxMin / levels)];
}

/** Q4_K / Q5_K: d, dmin f16 | 12 bytes of 6-bit (scale, min) pairs | (Q5_K: qh[32]) | qs[128]. */
function k45(bits: 4 | 5, f32: (h: number) => number): Encoder {
  const bytes = bits === 4 ? 144 : 176;
  const top = (1 << bits) - 1;
  return (x, out, f16) => {
    const scale = new Float64Array(8);
    const min = new Float64Array(8);
    const sc = new Uint8Array(8);
    const mn = new Uint8Array(8);
    for (let b = 0, o = 0; b < x.length; b += 256, o += bytes) {
      const [dh, mh] = kScales(x, b, 32, top, 63, f16, scale, min);
      put16(out, o, dh);
      put16(out, o + 2, mh);
      const d = f32(dh);
      const dmin = f32(mh);
      for (let i = 0; i < 8; i++) {
        sc[i] = clamp(d ? near(scale[i]! / d) : 0, 0, 63);
        mn[i] = clamp(dmin ? near(-min[i]! / dmin) : 0, 0, 63);
      }
      for (let i = 0; i < 4; i++) {
        out[o + 4 + i] = sc[i]! | ((sc[i + 4]! >>> 4) << 6);
        out[o + 8 + i] = mn[i]! | ((mn[i + 4]! >>> 4) << 6);
        out[o + 12 + i] = (sc[i + 4]! & 15) | ((mn[i + 4]! & 15) << 4);
      }
      const qs = o + (bits === 4 ? 16 : 48);
      for (let p = 0; p < 256; p++) {
        const j = p >> 5;
        const s = d * sc[j]!;
        const q = s ? clamp(near((x[b + p]! + dmin * mn[j]!) / s), 0, top) : 0;
        const c = p >> 6; // 64-value chunk: 32 bytes, low nibble then high nibble
        const l = p & 31;
        const hiHalf = (p & 32) !== 0;
        out[qs + 32 * c + l]! |= (q & 15) << (hiHalf ? 4 : 0);
        if (bits === 5 && q & 16) out[o + 16 + l]! |= 1 << (2 * c + (hiHalf ? 1 : 0));
      }
    }
  };
}

/** Q6_K: ql[128] | qh[64] | scales i8[16] | d f16; x = d * sc * (q - 32), 16-value sub-blocks. */
const q6K =
  (f32: (h: number) => number): Encoder =>
  (x, out, f16) => {
    for (let b = 0, o = 0; b < x.length; b += 256, o += 210) {
      const sub = Array.from({ length: 16 }, (_, i) => signedMax(x, b + 16 * i, 16) / -32);
      const dh = f16(Math.max(...sub.map(Math.abs)) / 127);
      put16(out, o + 208, dh);
      const d = f32(dh);
      for (let i = 0; i < 16; i++) out[o + 192 + i] = clamp(d ? near(sub[i]! / d) : 0, -128, 127) & 255;
      for (let p = 0; p < 256; p++) {
        const s = d * ((out[o + 192 + (p >> 4)]! << 24) >> 24);
        const q = (s ? clamp(near(x[b + p]! / s), -32, 31) : 0) + 32;
        const h = p >> 7; // half: 128 values
        const r = p & 127;
        const k = r >> 5; // quarter within the half: which nibble / bit pair
        const l = r & 31;
        const ql = o + 64 * h + l + (k & 1 ? 32 : 0);
        out[ql]! |= (q & 15) << (k >= 2 ? 4 : 0);
        out[o + 128 + 32 * h + l]! |= (q >>> 4) << (2 * k);
      }
    }
  };

/** Q2_K: scales u8[16] (scale | min << 4) | qs[64] | d, dmin f16; x = d * sc * q - dmin * m, 16-value sub-blocks. */
const q2K =
  (f32: (h: number) => number): Encoder =>
  (x, out, f16) => {
    const scale = new Float64Array(16);
    const min = new Float64Array(16);
    for (let b = 0, o = 0; b < x.length; b += 256, o += 84) {
      const [dh, mh] = kScales(x, b, 16, 3, 15, f16, scale, min);
      put16(out, o + 80, dh);
      put16(out, o + 82, mh);
      const d = f32(dh);
      const dmin = f32(mh);
      for (let i = 0; i < 16; i++) {
        const sc = clamp(d ? near(scale[i]! / d) : 0, 0, 15);
        const m = clamp(dmin ? near(-min[i]! / dmin) : 0, 0, 15);
        out[o + i] = sc | (m << 4);
      }
      for (let p = 0; p < 256; p++) {
        const i = p >> 4;
        const s = d * (out[o + i]! & 15);
        const q = s ? clamp(near((x[b + p]! + dmin * (out[o + i]! >>> 4)) / s), 0, 3) : 0;
        const h = p >> 7;
        const r = p & 127;
        const shift = 2 * (r >> 5);
        out[o + 16 + 32 * h + (r & 31)]! |= q << shift;
      }
    }
  };

/** Q3_K: hmask[32] | qs[64] | 12 bytes of 6-bit scales (+32) | d f16; x = d * sc * q, q in [-4, 3]. */
const q3K =
  (f32: (h: number) => number): Encoder =>
  (x, out, f16) => {
    for (let b = 0, o = 0; b < x.length; b += 256, o += 110) {
      const sub = Array.from({ length: 16 }, (_, i) => signedMax(x, b + 16 * i, 16) / -4);
      const dh = f16(Math.max(...sub.map(Math.abs)) / 31);
      put16(out, o + 108, dh);
      const d = f32(dh);
      const sc = sub.map((s) => clamp(d ? near(s / d) : 0, -32, 31));
      for (let i = 0; i < 16; i++) {
        const v = sc[i]! + 32;
        out[o + 96 + (i % 8)]! |= (v & 15) << (i < 8 ? 0 : 4);
        out[o + 104 + (i % 4)]! |= ((v >>> 4) & 3) << (2 * Math.floor(i / 4));
      }
      for (let p = 0; p < 256; p++) {
        const s = d * sc[p >> 4]!;
        const q = (s ? clamp(near(x[b + p]! / s), -4, 3) : 0) + 4;
        const h = p >> 7;
        const r = p & 127;
        const k = r >> 5;
        const l = r & 31;
        out[o + 32 + 32 * h + l]! |= (q & 3) << (2 * k);
        if (q & 4) out[o + l]! |= 1 << (4 * h + k);
      }
    }
  };

/** Encode x (whole blocks) as ggml type `type` into `out`; `f16` rounds to half bits, `f32` reads them back. */
export function quantizeMore(
  type: number,
  x: Float32Array,
  out: Uint8Array,
  f16: (v: number) => number,
  f32: (h: number) => number,
): void {
  const encoders: Record<number, Encoder> = {
    3: legacyMin(4),
    6: q50,
    7: legacyMin(5),
    10: q2K(f32),
    11: q3K(f32),
    12: k45(4, f32),
    13: k45(5, f32),
    14: q6K(f32),
  };
  const e = encoders[type];
  if (!e) throw new SteerlabError("unsupported", `no encoder for ggml type ${type}`, { got: String(type) });
  e(x, out, f16);
}
