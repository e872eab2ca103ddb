/**
 * Decoders for the ggml block types steerlab reads but does not write: the 5-bit and offset 4-bit legacy
 * types (Q4_1, Q5_0, Q5_1) and the K-quants (Q2_K .. Q6_K, 256-value super-blocks), as found in
 * llama.cpp's quantized files (Q4_K_M mixes Q4_K, Q6_K and, for odd rows, Q5_0 / Q8_0). Layouts follow
 * ggml-common.h; the values match gguf-py's numpy decoders (see test/io/gguf-quant.test.ts).
 * `half` is the f16 -> f32 table; every function decodes n values (whole blocks) from src into out.
 */
import { SteerlabError } from "../errors.js";

export function dequantizeMore(
  type: number,
  src: Uint8Array,
  n: number,
  out: Float32Array,
  half: Float32Array,
): void {
  const f = DECODERS[type];
  if (!f) throw new SteerlabError("unsupported", `no decoder for ggml type ${type}`, { got: String(type) });
  f(src, n, out, half);
}

type Decoder = (src: Uint8Array, n: number, out: Float32Array, half: Float32Array) => void;

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

/** A little-endian u32 (Q5_0 / Q5_1 keep the 5th bits of their 32 values in one). */
function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** Q4_1 (32 values): d f16 | m f16 | qs u8[16]; x = d * q + m (low nibbles 0..15, high 16..31). */
function q41(src: Uint8Array, n: number, out: Float32Array, half: Float32Array): void {
  for (let b = 0, o = 0; b < n; b += 32, o += 20) {
    const d = half[u16(src, o)]!;
    const m = half[u16(src, o + 2)]!;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 4 + j]!;
      out[b + j] = d * (q & 15) + m;
      out[b + 16 + j] = d * (q >>> 4) + m;
    }
  }
}

/** Q5_0 (32 values): d f16 | qh u32 (5th bits) | qs u8[16]; x = d * (q - 16). Q5_1 adds m f16 after d: x = d * q + m. */
function q5(offset: boolean): Decoder {
  const bytes = offset ? 24 : 22;
  return (src, n, out, half) => {
    for (let b = 0, o = 0; b < n; b += 32, o += bytes) {
      const d = half[u16(src, o)]!;
      const m = offset ? half[u16(src, o + 2)]! : 0;
      const p = o + (offset ? 4 : 2);
      const qh = u32(src, p);
      for (let j = 0; j < 16; j++) {
        const q = src[p + 4 + j]!;
        const lo = (q & 15) | (((qh >>> j) & 1) << 4);
        const hi = (q >>> 4) | (((qh >>> (j + 16)) & 1) << 4);
        out[b + j] = offset ? d * lo + m : d * (lo - 16);
        out[b + 16 + j] = offset ? d * hi + m : d * (hi - 16);
      }
    }
  };
}

/** Q2_K super-block: scales u8[16] (low 4 bits scale, high 4 bits min) | qs u8[64] (2 bits) | d f16 | dmin f16. */
function q2K(src: Uint8Array, n: number, out: Float32Array, half: Float32Array): void {
  for (let b = 0, o = 0; b < n; b += 256, o += 84) {
    const d = half[u16(src, o + 80)]!;
    const dmin = half[u16(src, o + 82)]!;
    let y = b;
    let is = 0;
    for (let h = 0; h < 2; h++) {
      const q = o + 16 + 32 * h;
      for (let shift = 0; shift < 8; shift += 2) {
        for (const half16 of [0, 16]) {
          const sc = src[o + is++]!;
          const dl = d * (sc & 15);
          const ml = dmin * (sc >>> 4);
          for (let l = 0; l < 16; l++) out[y++] = dl * ((src[q + half16 + l]! >>> shift) & 3) - ml;
        }
      }
    }
  }
}

/** Q3_K super-block: hmask u8[32] (3rd bits) | qs u8[64] (2 bits) | scales (16 6-bit, packed in 12) | d f16. */
function q3K(src: Uint8Array, n: number, out: Float32Array, half: Float32Array): void {
  const sc = new Int8Array(16);
  for (let b = 0, o = 0; b < n; b += 256, o += 110) {
    const d = half[u16(src, o + 108)]!;
    // Unpack: low 4 bits from bytes 0..7, high 2 bits from bytes 8..11; stored with an offset of 32.
    const s = o + 96;
    for (let i = 0; i < 16; i++) {
      const low = i < 8 ? src[s + i]! & 15 : src[s + i - 8]! >>> 4;
      const high = (src[s + 8 + (i % 4)]! >>> (2 * Math.floor(i / 4))) & 3;
      sc[i] = (low | (high << 4)) - 32;
    }
    let y = b;
    let is = 0;
    let m = 1;
    for (let h = 0; h < 2; h++) {
      const q = o + 32 + 32 * h;
      for (let shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (const half16 of [0, 16]) {
          const dl = d * sc[is++]!;
          for (let l = 0; l < 16; l++) {
            const hm = src[o + half16 + l]! & m ? 0 : 4;
            out[y++] = dl * (((src[q + half16 + l]! >>> shift) & 3) - hm);
          }
        }
      }
    }
  }
}

/** The 6-bit (scale, min) pair j of a Q4_K / Q5_K super-block, from its 12 packed bytes at `sc`. */
function scaleMinK4(src: Uint8Array, sc: number, j: number): [number, number] {
  return j < 4
    ? [src[sc + j]! & 63, src[sc + j + 4]! & 63]
    : [
        (src[sc + j + 4]! & 15) | ((src[sc + j - 4]! >>> 6) << 4),
        (src[sc + j + 4]! >>> 4) | ((src[sc + j]! >>> 6) << 4),
      ];
}

/** Q5_K super-block: d f16 | dmin f16 | scales u8[12] | qh u8[32] (5th bits) | qs u8[128]. */
function q5K(src: Uint8Array, n: number, out: Float32Array, half: Float32Array): void {
  for (let b = 0, o = 0; b < n; b += 256, o += 176) {
    const d = half[u16(src, o)]!;
    const dmin = half[u16(src, o + 2)]!;
    const qh = o + 16;
    let ql = o + 48;
    for (let j = 0, is = 0, u1 = 1, u2 = 2; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      const [s1, m1] = scaleMinK4(src, o + 4, is);
      const [s2, m2] = scaleMinK4(src, o + 4, is + 1);
      for (let l = 0; l < 32; l++) {
        const h = src[qh + l]!;
        out[b + j + l] = d * s1 * ((src[ql + l]! & 15) + (h & u1 ? 16 : 0)) - dmin * m1;
        out[b + j + 32 + l] = d * s2 * ((src[ql + l]! >>> 4) + (h & u2 ? 16 : 0)) - dmin * m2;
      }
    }
  }
}

/** Q4_K super-block (256 values): d f16 | dmin f16 | scales u8[12] (8 6-bit scale/min pairs) | qs u8[128]. */
function q4K(src: Uint8Array, n: number, out: Float32Array, half: Float32Array): void {
  for (let b = 0, o = 0; b < n; b += 256, o += 144) {
    const d = half[u16(src, o)]!;
    const dmin = half[u16(src, o + 2)]!;
    let q = o + 16;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
      const [s1, m1] = scaleMinK4(src, o + 4, is);
      const [s2, m2] = scaleMinK4(src, o + 4, is + 1);
      for (let l = 0; l < 32; l++) {
        out[b + j + l] = d * s1 * (src[q + l]! & 15) - dmin * m1;
        out[b + j + 32 + l] = d * s2 * (src[q + l]! >>> 4) - dmin * m2;
      }
    }
  }
}

/** Q6_K super-block (256 values): ql u8[128] (low 4 bits) | qh u8[64] (high 2 bits) | scales i8[16] | d f16. */
function q6K(src: Uint8Array, n: number, out: Float32Array, half: Float32Array): void {
  for (let b = 0, o = 0; b < n; b += 256, o += 210) {
    const d = half[u16(src, o + 208)]!;
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h;
      const qh = o + 128 + 32 * h;
      const sc = o + 192 + 8 * h;
      const y = b + 128 * h;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = src[qh + l]!;
        const q1 = ((src[ql + l]! & 15) | ((hb & 3) << 4)) - 32;
        const q2 = ((src[ql + l + 32]! & 15) | (((hb >>> 2) & 3) << 4)) - 32;
        const q3 = ((src[ql + l]! >>> 4) | (((hb >>> 4) & 3) << 4)) - 32;
        const q4 = ((src[ql + l + 32]! >>> 4) | (((hb >>> 6) & 3) << 4)) - 32;
        const s = (k: number) => (src[sc + is + k]! << 24) >> 24;
        out[y + l] = d * s(0) * q1;
        out[y + l + 32] = d * s(2) * q2;
        out[y + l + 64] = d * s(4) * q3;
        out[y + l + 96] = d * s(6) * q4;
      }
    }
  }
}

const DECODERS: Record<number, Decoder> = {
  3: q41,
  6: q5(false),
  7: q5(true),
  10: q2K,
  11: q3K,
  12: q4K,
  13: q5K,
  14: q6K,
};
