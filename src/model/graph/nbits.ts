/**
 * Quantized matrices on ONNX Runtime without expanding them to f32: ggml block types mapped onto the contrib ops
 * `com.microsoft::MatMulNBits` (y = x @ W^T, W stored as [N, K/bs, bs*bits/8] codes with one f32 scale per block)
 * and `GatherBlockQuantized` (embedding rows). Both compute w = (code - zero_point) * scale.
 *
 * What ONNX Runtime 1.30's CPU kernels take (measured, .scratch experiments in the issue-12 notes): bits 4 and 8,
 * block 16 or 32; uint8 zero points (packed) or none (then 8 for 4 bits, 128 for 8 bits); float zero points only
 * at 4 bits and only through a slow dequantize-per-run path, so we never use them. accuracy_level 0 computes in
 * f32 (exact; 8-bit weights then take a dequantize-per-run path, fine for tests, slow); accuracy_level 4 quantizes
 * the activations to int8 per block, as llama.cpp does for its quantized matmuls, and is the fast path.
 *
 * Every ggml type maps exactly (the same w up to f32 rounding of scale products):
 *   Q4_0, Q3_K          4-bit codes, signed (default zero point 8), block 32 / 16
 *   Q8_0, Q5_0, Q6_K    8-bit codes, signed (default zero point 128), block 32 / 32 / 16 (5- and 6-bit codes fit 8)
 *   Q4_1, Q4_K, Q2_K    4-bit codes with zero point 0 plus a per-block offset (the format's min), block 32 / 32 / 16
 *   Q5_1, Q5_K          8-bit codes with zero point 0 plus a per-block offset, block 32
 * A per-block offset o_b adds sum_b o_b * sum_{k in b} x_k: one small f32 matmul of the block sums of x with the
 * offsets [K/bs, N] (K/bs is K/32 or K/16 wide), so nothing is re-quantized.
 */
import { SteerlabError } from "../../errors.js";
import { dequantize, f16ToF32, GGML_TYPE, ggmlTypeInfo, ggmlTypeName } from "../../io/gguf-quant.js";
import type { QuantTensor } from "../weights.js";
import { quantRowBytes } from "../weights.js";
import type { GraphBuilder, Value } from "./builder.js";

interface Layout {
  bits: 4 | 8;
  /** Values per MatMulNBits block (a ggml block or sub-block). */
  block: 16 | 32;
  /** true: w = code * scale + offset (zero point 0); false: w = (code - 2^(bits-1)) * scale. */
  offset: boolean;
  /** Scale and offset of each sub-block of the ggml block at byte `o`. */
  params(src: Uint8Array, o: number, scales: Float32Array, offsets: Float32Array, at: number): void;
}

const h16 = (b: Uint8Array, o: number) => f16ToF32(b[o]! | (b[o + 1]! << 8));

/** The 6-bit (scale, min) pair j of a Q4_K / Q5_K super-block, from its 12 packed bytes at `sc`. */
function scaleMinK4(src: Uint8Array, sc: number, j: number): [number, number] {
  return j < 4
    ? [src[sc + j]! & 63, src[sc + j + 4]! & 63]
    : [
        (src[sc + j + 4]! & 15) | ((src[sc + j - 4]! >>> 6) << 4),
        (src[sc + j + 4]! >>> 4) | ((src[sc + j]! >>> 6) << 4),
      ];
}

const plain: Layout["params"] = (src, o, s, _off, at) => {
  s[at] = h16(src, o);
};
const withMin: Layout["params"] = (src, o, s, off, at) => {
  s[at] = h16(src, o);
  off[at] = h16(src, o + 2);
};
const kMin: Layout["params"] = (src, o, s, off, at) => {
  const d = h16(src, o);
  const dmin = h16(src, o + 2);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(src, o + 4, j);
    s[at + j] = d * sc;
    off[at + j] = -(dmin * m);
  }
};

const LAYOUTS: Record<number, Layout> = {
  [GGML_TYPE.Q4_0]: { bits: 4, block: 32, offset: false, params: plain },
  [GGML_TYPE.Q8_0]: { bits: 8, block: 32, offset: false, params: plain },
  [GGML_TYPE.Q5_0]: { bits: 8, block: 32, offset: false, params: plain },
  [GGML_TYPE.Q4_1]: { bits: 4, block: 32, offset: true, params: withMin },
  [GGML_TYPE.Q5_1]: { bits: 8, block: 32, offset: true, params: withMin },
  [GGML_TYPE.Q4_K]: { bits: 4, block: 32, offset: true, params: kMin },
  [GGML_TYPE.Q5_K]: { bits: 8, block: 32, offset: true, params: kMin },
  [GGML_TYPE.Q2_K]: {
    bits: 4,
    block: 16,
    offset: true,
    params(src, o, s, off, at) {
      const d = h16(src, o + 80);
      const dmin = h16(src, o + 82);
      for (let i = 0; i < 16; i++) {
        s[at + i] = d * (src[o + i]! & 15);
        off[at + i] = -(dmin * (src[o + i]! >>> 4));
      }
    },
  },
  [GGML_TYPE.Q3_K]: {
    bits: 4,
    block: 16,
    offset: false,
    params(src, o, s, _off, at) {
      const d = h16(src, o + 108);
      const b = o + 96;
      for (let i = 0; i < 16; i++) {
        const low = i < 8 ? src[b + i]! & 15 : src[b + i - 8]! >>> 4;
        const high = (src[b + 8 + (i % 4)]! >>> (2 * Math.floor(i / 4))) & 3;
        s[at + i] = d * ((low | (high << 4)) - 32);
      }
    },
  },
  [GGML_TYPE.Q6_K]: {
    bits: 8,
    block: 16,
    offset: false,
    params(src, o, s, _off, at) {
      const d = h16(src, o + 208);
      for (let i = 0; i < 16; i++) s[at + i] = d * ((src[o + 192 + i]! << 24) >> 24);
    },
  },
};

/** ggml types the engine keeps quantized (the loader reads other types as f32). */
export const NBITS_TYPES: ReadonlySet<number> = new Set(Object.keys(LAYOUTS).map(Number));

/** A matrix [N, K] in MatMulNBits form. */
export interface NBits {
  bits: 4 | 8;
  block: 16 | 32;
  n: number;
  k: number;
  /** [N, K/block, block*bits/8]: codes of row n, block b; 4-bit codes two per byte, even index in the low nibble. */
  codes: Uint8Array;
  /** [N, K/block] */
  scales: Float32Array;
  /** [N, K/block] per-block offsets (formats with a min), else null. */
  offsets: Float32Array | null;
}

function layoutOf(type: number): Layout {
  const l = LAYOUTS[type];
  if (!l) {
    throw new SteerlabError("unsupported", `no quantized compute for ${ggmlTypeName(type)}`, {
      expected: [...NBITS_TYPES].map(ggmlTypeName).join(" | "),
      got: ggmlTypeName(type),
    });
  }
  return l;
}

/**
 * Convert a ggml-quantized [N, K] matrix, `scale` folded into its scales and offsets. Codes are recovered
 * from the dequantized values of each block ((w - offset) / scale is an integer up to rounding), so one decoder
 * per type (gguf-quant.ts) stays the single reading of every bit layout.
 */
export function toNBits(q: QuantTensor, scale = 1): NBits {
  if (q.ggmlType === GGML_TYPE.Q4_0 || q.ggmlType === GGML_TYPE.Q8_0) return repackLegacy(q, scale);
  if (q.ggmlType === GGML_TYPE.Q4_K) return repackQ4K(q, scale);
  return toNBitsDecoded(q, scale);
}

/** The general path of toNBits for every type: decode, then recover codes (exported for the fast paths' test). */
export function toNBitsDecoded(q: QuantTensor, scale = 1): NBits {
  const L = layoutOf(q.ggmlType);
  const [N, K] = q.shape;
  const info = ggmlTypeInfo(q.ggmlType)!;
  const perBlock = info.block / L.block; // MatMulNBits blocks per ggml block
  const nb = K / L.block;
  const rb = quantRowBytes(q);
  const blob = (L.block * L.bits) / 8;
  const codes = new Uint8Array(N * nb * blob);
  const scales = new Float32Array(N * nb);
  const offsets = L.offset ? new Float32Array(N * nb) : null;
  const off = offsets ?? new Float32Array(N * nb);
  const zero = L.offset ? 0 : 1 << (L.bits - 1);
  const max = (1 << L.bits) - 1;
  for (let r = 0; r < N; r++) {
    const row = q.bytes.subarray(r * rb, (r + 1) * rb);
    const w = dequantize(q.ggmlType, row, K);
    for (let g = 0, o = 0; g < K / info.block; g++, o += info.bytes) {
      L.params(row, o, scales, off, r * nb + g * perBlock);
    }
    for (let b = 0; b < nb; b++) {
      const i = r * nb + b;
      const s = Math.fround(scales[i]!);
      const m = Math.fround(off[i]!);
      const base = i * blob;
      for (let j = 0; j < L.block; j++) {
        const v = w[b * L.block + j]!;
        const c = s === 0 ? zero : Math.round((v - m) / s) + zero;
        if (!(c >= 0 && c <= max)) {
          throw new SteerlabError(
            "bad_tensor",
            `${ggmlTypeName(q.ggmlType)} block does not decode to codes`,
            {
              got: `code ${c} at row ${r}, block ${b}`,
              hint: "a corrupt tensor or a steerlab bug in the layout table",
            },
          );
        }
        if (L.bits === 8) codes[base + j] = c;
        else codes[base + (j >> 1)]! |= c << ((j & 1) * 4);
      }
      scales[i] = s * scale;
      if (offsets) offsets[i] = m * scale;
    }
  }
  return { bits: L.bits, block: L.block, n: N, k: K, codes, scales, offsets };
}

/** Low and high nibbles of the two bytes of a 16-bit word, as one byte each. */
const lo = (w: number) => (w & 0xf) | ((w >>> 4) & 0xf0);
const hi = (w: number) => ((w >>> 4) & 0xf) | ((w >>> 8) & 0xf0);

/**
 * Q4_0 and Q8_0 (the common types) by moving bits instead of decoding: the same codes as toNBits' general path,
 * an order of magnitude faster at load. Q4_0 keeps values j and j + 16 in one byte, MatMulNBits values 2i and
 * 2i + 1; Q8_0's int8 q is code q + 128. Blocks are read as 16-bit words (ggml's block sizes are even and the
 * format is little-endian, as is every platform Node runs on) and written as 32- or 16-bit words.
 */
function repackLegacy(q: QuantTensor, scale: number): NBits {
  const [N, K] = q.shape;
  const four = q.ggmlType === GGML_TYPE.Q4_0;
  const nBlocks = (N * K) / 32;
  const codes = new Uint8Array(nBlocks * (four ? 16 : 32));
  const scales = new Float32Array(nBlocks);
  // A view at an odd byte offset cannot be read as 16-bit words: copy it (fresh file reads are aligned).
  const bytes = q.bytes.byteOffset % 2 === 0 ? q.bytes : q.bytes.slice();
  const src = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 1);
  if (four) {
    const out = new Uint32Array(codes.buffer);
    for (let b = 0, o = 0, c = 0; b < nBlocks; b++, o += 9, c += 4) {
      scales[b] = Math.fround(f16ToF32(src[o]!)) * scale;
      // Word j holds ggml bytes 2j, 2j + 1: their low nibbles are values 2j, 2j + 1 of the first half of the
      // block (MatMulNBits byte j), their high nibbles the same of the second half (byte j + 8).
      const s0 = src[o + 1]!;
      const s1 = src[o + 2]!;
      const s2 = src[o + 3]!;
      const s3 = src[o + 4]!;
      const s4 = src[o + 5]!;
      const s5 = src[o + 6]!;
      const s6 = src[o + 7]!;
      const s7 = src[o + 8]!;
      out[c] = lo(s0) | (lo(s1) << 8) | (lo(s2) << 16) | (lo(s3) << 24);
      out[c + 1] = lo(s4) | (lo(s5) << 8) | (lo(s6) << 16) | (lo(s7) << 24);
      out[c + 2] = hi(s0) | (hi(s1) << 8) | (hi(s2) << 16) | (hi(s3) << 24);
      out[c + 3] = hi(s4) | (hi(s5) << 8) | (hi(s6) << 16) | (hi(s7) << 24);
    }
  } else {
    const out = new Uint16Array(codes.buffer);
    for (let b = 0, o = 0, c = 0; b < nBlocks; b++, o += 17, c += 16) {
      scales[b] = Math.fround(f16ToF32(src[o]!)) * scale;
      for (let j = 0; j < 16; j++) out[c + j] = src[o + 1 + j]! ^ 0x8080;
    }
  }
  return { bits: four ? 4 : 8, block: 32, n: N, k: K, codes, scales, offsets: null };
}

/**
 * Q4_K by moving bits (the same codes, scales and offsets as the general path). A super-block's 64-value chunk c
 * keeps values c*64 + l in the low nibbles of its 32 bytes and c*64 + 32 + l in the high ones; MatMulNBits wants
 * each 32-value sub-block's values 2i, 2i + 1 in byte i.
 */
function repackQ4K(q: QuantTensor, scale: number): NBits {
  const [N, K] = q.shape;
  const supers = (N * K) / 256;
  const codes = new Uint8Array((N * K) / 2);
  const scales = new Float32Array(supers * 8);
  const offsets = new Float32Array(supers * 8);
  const src = q.bytes;
  for (let b = 0, o = 0; b < supers; b++, o += 144) {
    const d = h16(src, o);
    const dmin = h16(src, o + 2);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(src, o + 4, j);
      scales[b * 8 + j] = Math.fround(d * sc) * scale;
      offsets[b * 8 + j] = Math.fround(-(dmin * m)) * scale;
    }
    for (let c = 0; c < 4; c++) {
      const qs = o + 16 + 32 * c;
      const lo = (b * 8 + 2 * c) * 16; // sub-block 2c: the low nibbles
      const hi = lo + 16; // sub-block 2c + 1: the high nibbles
      for (let i = 0; i < 16; i++) {
        const x = src[qs + 2 * i]!;
        const y = src[qs + 2 * i + 1]!;
        codes[lo + i] = (x & 15) | ((y & 15) << 4);
        codes[hi + i] = (x >>> 4) | (y & 0xf0);
      }
    }
  }
  return { bits: 4, block: 32, n: N, k: K, codes, scales, offsets };
}

/** Same layout (bits, block, offsets or not, K): parts can be stacked into one matmul. */
export function sameLayout(a: QuantTensor, b: QuantTensor): boolean {
  const x = layoutOf(a.ggmlType);
  const y = layoutOf(b.ggmlType);
  return x.bits === y.bits && x.block === y.block && x.offset === y.offset && a.shape[1] === b.shape[1];
}

/** Stack matrices of one layout along N (rows of one are followed by rows of the next). */
export function concatNBits(parts: readonly NBits[]): NBits {
  const first = parts[0]!;
  if (parts.length === 1) return first;
  const cat = <A extends Uint8Array | Float32Array>(xs: A[], make: (n: number) => A): A => {
    const out = make(xs.reduce((s, x) => s + x.length, 0));
    let at = 0;
    for (const x of xs) {
      out.set(x as never, at);
      at += x.length;
    }
    return out;
  };
  return {
    ...first,
    n: parts.reduce((s, p) => s + p.n, 0),
    codes: cat(
      parts.map((p) => p.codes),
      (n) => new Uint8Array(n),
    ),
    scales: cat(
      parts.map((p) => p.scales),
      (n) => new Float32Array(n),
    ),
    offsets: first.offsets
      ? cat(
          parts.map((p) => p.offsets!),
          (n) => new Float32Array(n),
        )
      : null,
  };
}

/** Bytes a [N, K] matrix of ggml type `type` takes in MatMulNBits form (codes, scales, zero points, offsets). */
export function nbitsHeldBytes(type: number, n: number, k: number): number {
  const L = layoutOf(type);
  const nb = k / L.block;
  return (n * k * L.bits) / 8 + 4 * n * nb + (L.offset ? n * Math.ceil((nb * L.bits) / 8) + 4 * n * nb : 0);
}

/** Bytes ONNX Runtime holds for a matrix in this form (codes, scales, zero points, offsets). */
export function nbitsBytes(m: NBits): number {
  const nb = m.k / m.block;
  return (
    m.codes.length +
    4 * m.scales.length +
    (m.offsets ? m.n * Math.ceil((nb * m.bits) / 8) + 4 * m.offsets.length : 0)
  );
}

/** The initializers of a matrix, registered once per graph (a tied embedding shares them with the head). */
export interface NBitsInits {
  m: NBits;
  codes: Value;
}

export function nbitsInits(g: GraphBuilder, name: string, m: NBits): NBitsInits {
  const nb = m.k / m.block;
  return { m, codes: g.bytes(`${name}.codes`, [m.n, nb, (m.block * m.bits) / 8], m.codes) };
}

/**
 * Block sums of x [B, T, K] ─► [B, T, K/block] (the factor of each block's offset), as a matmul with ones:
 * ReduceSum mis-shapes an empty input (the head runs with 0 rows when only the embedding is wanted).
 */
function blockSums(g: GraphBuilder, x: Value, m: NBits): Value {
  const s = g.scope("block_sums");
  const r = s.op("Reshape", [x, s.ints("shape", [0, 0, m.k / m.block, m.block])]);
  const ones = g.weight(`${s.path}/ones`, [m.block, 1], new Float32Array(m.block).fill(1));
  return s.op("Squeeze", [s.op("MatMul", [r, ones]), s.ints("axes", [-1])]);
}

/**
 * x [B, T, K] (or [rows, K] with rank 2) ─► MatMulNBits(codes, scales[, zero points 0]) ─► y [B, T, N]
 *   (+ block_sums(x) [B, T, K/bs] @ offsets^T [K/bs, N]   where the format has a min)
 * `accuracy` is MatMulNBits' accuracy_level: 0 computes in f32, 4 with int8 activations.
 */
export function nbitsMatMul(
  g: GraphBuilder,
  x: Value,
  w: NBitsInits,
  name: string,
  accuracy: number,
  rank: 2 | 3 = 3,
): Value {
  const { m } = w;
  const nb = m.k / m.block;
  const inputs = [x, w.codes, g.weight(`${name}.scales`, [m.n * nb], m.scales)];
  if (m.offsets) {
    const zpBytes = m.n * Math.ceil((nb * m.bits) / 8);
    inputs.push(g.bytes(`${name}.zero_points`, [zpBytes], new Uint8Array(zpBytes)));
  }
  let y = g.msOp("MatMulNBits", inputs, {
    K: m.k,
    N: m.n,
    bits: m.bits,
    block_size: m.block,
    accuracy_level: accuracy,
  });
  if (m.offsets) {
    // On [rows, K] the block sums go through [1, rows, K]: ORT fuses MatMul + Add into a Gemm that a rank-2
    // ReduceSum output trips (measured: "left.NumDimensions() == 2" fails).
    const x3 = rank === 3 ? x : g.op("Unsqueeze", [x, g.ints("lead_axis", [0])], {}, "Lift");
    const offT = new Float32Array(nb * m.n); // [K/bs, N]
    for (let r = 0; r < m.n; r++) for (let b = 0; b < nb; b++) offT[b * m.n + r] = m.offsets[r * nb + b]!;
    const offsets = g.weight(`${name}.offsets`, [nb, m.n], offT);
    let mins = g.op("MatMul", [blockSums(g, x3, m), offsets], {}, "MatMulMin");
    if (rank === 2) mins = g.op("Squeeze", [mins, g.ints("lead_axis_out", [0])], {}, "Drop");
    y = g.op("Add", [y, mins], {}, "AddMin");
  }
  return y;
}

/**
 * ids [B, T] ─► GatherBlockQuantized(codes [V, K/bs, bs*bits/8], scales [V, K/bs, 1]) ─► [B, T, K/bs, bs]
 *   (+ Gather(offsets [V, K/bs]) [B, T, K/bs, 1]) ─► reshape [B, T, K]
 */
export function nbitsGather(g: GraphBuilder, ids: Value, w: NBitsInits, name: string): Value {
  const { m } = w;
  const nb = m.k / m.block;
  const inputs = [w.codes, ids, g.weight(`${name}.row_scales`, [m.n, nb, 1], m.scales)];
  if (m.offsets) inputs.push(g.bytes(`${name}.row_zero_points`, [m.n, nb, 1], new Uint8Array(m.n * nb)));
  let rows = g.msOp("GatherBlockQuantized", inputs, {
    gather_axis: 0,
    quantize_axis: 2,
    block_size: m.block,
    bits: m.bits,
  });
  if (m.offsets) {
    const off = g.op(
      "Gather",
      [g.weight(`${name}.row_offsets`, [m.n, nb], m.offsets), ids],
      { axis: 0 },
      "GatherMin",
    );
    const s = g.scope("min");
    rows = s.op("Add", [rows, s.op("Unsqueeze", [off, s.ints("axes", [-1])])]);
  }
  return g.op("Reshape", [rows, g.ints("shape", [0, 0, m.k])], {}, "RowsReshape");
}
