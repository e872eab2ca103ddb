/**
 * Storage dtype codecs: f16 and bf16 (safetensors and GGUF) and ggml's block quantizations (GGUF).
 * Everything decodes to f32 (the engine computes in f32). Encoders follow ggml's reference quantizers
 * (quantize_row_*_ref) so files written here dequantize in llama.cpp to the same values as here.
 * Byte order: little-endian, as both formats specify (this host is little-endian too).
 */
import { SteerlabError } from "../errors.js";
import { dequantizeMore } from "./gguf-dequant.js";
import { quantizeMore } from "./gguf-quantize-more.js";

// ---------- scalar half floats ----------

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** f32 -> IEEE half bits, round to nearest even; overflow gives +-Inf, NaN stays NaN. */
export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value / 2^-24, i.e. the 24-bit significand shifted right by (14 - e).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

let f16Table: Float32Array | null = null;

/** All 65536 half values as f32 (256 KiB, built once): decoding is then a table lookup. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? Number.NaN : s * Number.POSITIVE_INFINITY;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  f16Table = t;
  return t;
}

export function f16ToF32(h: number): number {
  return halfTable()[h & 0xffff]!;
}

/** f32 -> bfloat16 bits (the top half of the f32), round to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  const b = scratchU32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) & 0x8000) | 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

// ---------- ggml types ----------

/** ggml_type ids (ggml.h) that steerlab reads and writes. */
export const GGML_TYPE = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

interface TypeInfo {
  name: GgmlTypeName;
  /** Values per block. */
  block: number;
  /** Bytes per block. */
  bytes: number;
  /**
   * Byte offsets in a block of its f16 parameters (super-block scale d, and dmin where the type has one); the
   * rest are small integer codes. Block types only.
   */
  halves?: readonly number[];
}

const TYPES: Record<number, TypeInfo> = {
  0: { name: "F32", block: 1, bytes: 4 },
  1: { name: "F16", block: 1, bytes: 2 },
  2: { name: "Q4_0", block: 32, bytes: 18, halves: [0] },
  3: { name: "Q4_1", block: 32, bytes: 20, halves: [0, 2] },
  6: { name: "Q5_0", block: 32, bytes: 22, halves: [0] },
  7: { name: "Q5_1", block: 32, bytes: 24, halves: [0, 2] },
  8: { name: "Q8_0", block: 32, bytes: 34, halves: [0] },
  10: { name: "Q2_K", block: 256, bytes: 84, halves: [80, 82] },
  11: { name: "Q3_K", block: 256, bytes: 110, halves: [108] },
  12: { name: "Q4_K", block: 256, bytes: 144, halves: [0, 2] },
  13: { name: "Q5_K", block: 256, bytes: 176, halves: [0, 2] },
  14: { name: "Q6_K", block: 256, bytes: 210, halves: [208] },
  30: { name: "BF16", block: 1, bytes: 2 },
};

/**
 * Whether every value of a block-quantized buffer decodes finite, without decoding it: each value is a product
 * of the block's f16 parameters with small integers (below 2^13 in magnitude), so it is finite exactly when
 * every parameter is (a non-finite one makes each value of its block Inf or NaN, 0 * Inf included). Null for
 * types without block parameters (F32, F16, BF16): decode those.
 */
export function blocksAllFinite(type: number, bytes: Uint8Array): boolean | null {
  const t = TYPES[type];
  if (!t?.halves) return null;
  const end = bytes.length - (bytes.length % t.bytes);
  // The high byte of each f16: exponent bits all ones is Inf or NaN. One strided pass per parameter.
  for (const h of t.halves) {
    for (let o = h + 1; o < end; o += t.bytes) if ((bytes[o]! & 0x7c) === 0x7c) return false;
  }
  return true;
}

/** Block layout of a ggml type id, or undefined if steerlab cannot decode it. */
export function ggmlTypeInfo(type: number): TypeInfo | undefined {
  return TYPES[type];
}

export function ggmlTypeName(type: number): string {
  return TYPES[type]?.name ?? `ggml type ${type}`;
}

/** Bytes that n values of a type occupy; undefined when n is not a whole number of blocks. */
export function ggmlByteSize(type: number, n: number): number | undefined {
  const t = TYPES[type];
  if (!t || n % t.block !== 0) return undefined;
  return (n / t.block) * t.bytes;
}

/**
 * n little-endian f32 values. A buffer the caller owns whole (a fresh file read) becomes the array without a
 * copy; anything else (a view into a larger buffer, maybe unaligned) is copied.
 */
export function f32FromBytes(b: Uint8Array, n: number): Float32Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.byteLength === 4 * n) {
    return new Float32Array(b.buffer, 0, n);
  }
  const out = new Float32Array(n);
  new Uint8Array(out.buffer).set(b.subarray(0, 4 * n));
  return out;
}

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

/** Decode n values of `type` from `src` (exactly ggmlByteSize bytes) into a new f32 array. */
export function dequantize(type: number, src: Uint8Array, n: number): Float32Array {
  const size = ggmlByteSize(type, n);
  if (size === undefined || src.length < size) {
    throw new SteerlabError("bad_tensor", `cannot decode ${n} values of ${ggmlTypeName(type)}`, {
      expected: size === undefined ? "a whole number of blocks" : `${size} bytes`,
      got: `${src.length} bytes`,
    });
  }
  if (type === GGML_TYPE.F32) return f32FromBytes(src.subarray(0, size), n);
  const out = new Float32Array(n);
  const half = halfTable();
  switch (type) {
    case GGML_TYPE.F16:
      for (let i = 0; i < n; i++) out[i] = half[u16(src, 2 * i)]!;
      break;
    case GGML_TYPE.BF16: {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = u16(src, 2 * i) << 16;
      break;
    }
    case GGML_TYPE.Q8_0:
      // block: d f16 | qs int8[32]; x = d * q
      for (let b = 0, o = 0; b < n; b += 32, o += 34) {
        const d = half[u16(src, o)]!;
        for (let j = 0; j < 32; j++) out[b + j] = d * ((src[o + 2 + j]! << 24) >> 24);
      }
      break;
    case GGML_TYPE.Q4_0:
      // block: d f16 | qs u8[16]; low nibbles are values 0..15, high nibbles 16..31; x = d * (q - 8)
      for (let b = 0, o = 0; b < n; b += 32, o += 18) {
        const d = half[u16(src, o)]!;
        for (let j = 0; j < 16; j++) {
          const q = src[o + 2 + j]!;
          out[b + j] = d * ((q & 15) - 8);
          out[b + 16 + j] = d * ((q >>> 4) - 8);
        }
      }
      break;
    default:
      dequantizeMore(type, src, n, out, half);
  }
  return out;
}

/** roundf: half away from zero (Math.round rounds half up). */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** Encode f32 values as `type` (every type steerlab reads). Quantized types need whole blocks (32 or 256). */
export function quantize(type: number, x: Float32Array): Uint8Array {
  const n = x.length;
  const size = ggmlByteSize(type, n);
  if (size === undefined) {
    throw new SteerlabError("bad_input", `cannot encode ${n} values as ${ggmlTypeName(type)}`, {
      expected: `a multiple of ${TYPES[type]?.block ?? "?"} values`,
      got: String(n),
    });
  }
  const out = new Uint8Array(size);
  const put16 = (o: number, v: number) => {
    out[o] = v & 255;
    out[o + 1] = v >>> 8;
  };
  switch (type) {
    case GGML_TYPE.F32:
      out.set(new Uint8Array(x.buffer, x.byteOffset, size));
      break;
    case GGML_TYPE.F16:
      for (let i = 0; i < n; i++) put16(2 * i, f32ToF16(x[i]!));
      break;
    case GGML_TYPE.BF16:
      for (let i = 0; i < n; i++) put16(2 * i, f32ToBf16(x[i]!));
      break;
    case GGML_TYPE.Q8_0:
      for (let b = 0, o = 0; b < n; b += 32, o += 34) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]!));
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        put16(o, f32ToF16(d));
        for (let j = 0; j < 32; j++) out[o + 2 + j] = roundAway(Math.fround(x[b + j]! * id)) & 255;
      }
      break;
    case GGML_TYPE.Q4_0:
      for (let b = 0, o = 0; b < n; b += 32, o += 18) {
        // The signed value of largest magnitude maps to -8 exactly.
        let amax = 0;
        let max = 0;
        for (let j = 0; j < 32; j++) {
          const v = x[b + j]!;
          if (Math.abs(v) > amax) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const d = Math.fround(max / -8);
        const id = d ? Math.fround(1 / d) : 0;
        put16(o, f32ToF16(d));
        for (let j = 0; j < 16; j++) {
          const a = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b + j]! * id) + 8.5)));
          const c = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b + 16 + j]! * id) + 8.5)));
          out[o + 2 + j] = a | (c << 4);
        }
      }
      break;
    default:
      quantizeMore(type, x, out, f32ToF16, f16ToF32);
  }
  return out;
}
