/**
 * GGUF model files in llama.cpp's conventions (convert_hf_to_gguf.py, llama-arch.cpp, llama-model.cpp):
 *  - hyperparameters under `{arch}.*` keys, tensors named blk.N.attn_q.weight etc. (spec.ggufName);
 *  - llama (and mistral, written as llama) uses interleaved RoPE, so the converter permutes the rows of q and k
 *    within each head: HF row (h, j, i) -> GGUF row (h, i, j) for j in {0, 1}, i < hd/2. We undo that on load and
 *    redo it on save, so canonical weights stay in the HF rotate_half layout. qwen2 uses NEOX RoPE: no permutation;
 *  - gpt2 fuses q, k and v into blk.N.attn_qkv ([q + 2 kv, D] rows; spec names carry a ":q|:k|:v" suffix);
 *  - output.weight is absent when the embedding is tied;
 *  - llama3 RoPE scaling is a `rope_freqs.weight` tensor of per-frequency divisors (gguf-rope.ts).
 */
import { SteerlabError } from "../errors.js";
import { ARCHS } from "../model/arch/registry.js";
import type { ArchSpec } from "../model/arch/spec.js";
import { type ModelConfig, validate } from "../model/config.js";
import { modelFingerprint } from "../model/fingerprint.js";
import { NBITS_TYPES } from "../model/graph/nbits.js";
import type { LoadedModel, LoadOptions } from "../model/model.js";
import {
  checkWeights,
  denseWeight,
  expectedWeights,
  type FileTensor,
  isQuant,
  LazyWeights,
  type ModelWeights,
  qkRole,
  quantRowBytes,
  resolveDtype,
  sliceRows,
  storeAs,
  storedType,
  type Weight,
} from "../model/weights.js";
import { fmtShape, numel, shapeEquals, type Tensor, tensor } from "../tensor.js";
import { type ByteSource, fileSource } from "./byte-source.js";
import {
  type GgufMetadata,
  type GgufScalar,
  type GgufTensorInfo,
  type GgufTensorOut,
  type GgufType,
  type GgufValue,
  gv,
  metaNumber,
  metaString,
  readGgufHeader,
  readGgufTensor,
  writeGguf,
} from "./gguf.js";
import { GGML_TYPE, ggmlByteSize, ggmlTypeInfo, ggmlTypeName, quantize } from "./gguf-quant.js";
import {
  f32Decimal,
  factorsMatch,
  llama3FromFactors,
  llama3RopeFactors,
  ROPE_FREQS,
  steerlabLlama3,
} from "./gguf-rope.js";
import { tokenizerFromGguf } from "./tokenizer.js";

/** GGUF architectures whose llama.cpp RoPE is interleaved (LLAMA_ROPE_TYPE_NORM): q/k rows are permuted. */
const INTERLEAVED_ROPE = new Set(["llama"]);

/** HF rotate_half row order -> llama.cpp interleaved order, per head of `hd` rows ([rows, cols] row-major). */
export function permuteQk(t: Tensor, nHeads: number): Tensor {
  return moveRows(t, nHeads, false);
}

/** Inverse of permuteQk; quantized matrices move whole rows of blocks, so they stay quantized. */
export function unpermuteQk<W extends Weight>(t: W, nHeads: number): W {
  return moveRows(t, nHeads, true);
}

function moveRows<W extends Weight>(t: W, nHeads: number, inverse: boolean): W {
  const rows = t.shape[0]!;
  // Row r is elements [r * width, (r + 1) * width) of `data`: f32 values, or bytes of blocks.
  const data: Float32Array | Uint8Array = isQuant(t) ? t.bytes : t.data;
  const width = isQuant(t) ? quantRowBytes(t) : t.shape.length > 1 ? t.shape[1]! : 1;
  const hd = rows / nHeads;
  const half = hd / 2;
  const out = data instanceof Uint8Array ? new Uint8Array(data.length) : new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const hfRow = h * hd + j * half + i;
        const ggRow = h * hd + 2 * i + j;
        const [from, to] = inverse ? [ggRow, hfRow] : [hfRow, ggRow];
        out.set(data.subarray(from * width, (from + 1) * width) as never, to * width);
      }
    }
  }
  return (isQuant(t) ? { ...t, bytes: out } : tensor(t.shape, out as Float32Array)) as W;
}

/** Rows [a, b) of a 2-D tensor of the file, as a tensor info of its own (rows are whole blocks). */
function fileRows(info: GgufTensorInfo, a: number, b: number): GgufTensorInfo {
  const rb = ggmlByteSize(info.type, info.shape[1]!)!;
  return { ...info, shape: [b - a, info.shape[1]!], offset: info.offset + a * rb, byteSize: (b - a) * rb };
}

/**
 * One tensor from the file: matrices in a type the engine computes on quantized (nbits.ts) stay quantized
 * unless `dense`; everything else is decoded to f32.
 */
function readWeight(src: ByteSource, info: GgufTensorInfo, dense: boolean): Weight {
  if (dense || info.shape.length !== 2 || !NBITS_TYPES.has(info.type)) return readGgufTensor(src, info);
  const bytes = src.read(info.offset, info.byteSize, `tensor ${info.name}`);
  return { shape: [info.shape[0]!, info.shape[1]!], ggmlType: info.type, bytes };
}

// ---------- config ----------

function configFromMeta(
  meta: GgufMetadata,
  tensors: Map<string, GgufTensorInfo>,
  file: string,
  tied: boolean,
): [ModelConfig, ArchSpec] {
  const ggufArch = metaString(meta, "general.architecture", file);
  const spec = Object.values(ARCHS).find((s) => s.ggufArch === ggufArch && s.name === ggufArch);
  if (!spec) {
    throw new SteerlabError("unsupported", `unsupported GGUF architecture "${ggufArch}"`, {
      file,
      field: "general.architecture",
      expected: [...new Set(Object.values(ARCHS).map((s) => s.ggufArch))].join(" | "),
      got: String(ggufArch),
    });
  }
  const A = spec.ggufArch;
  const opt = (key: string) => {
    const v = metaNumber(meta, `${A}.${key}`, file);
    return v !== undefined && meta.get(`${A}.${key}`)?.type === "f32" ? f32Decimal(v) : v;
  };
  const need = (key: string): number => {
    const v = opt(key);
    if (v === undefined) {
      throw new SteerlabError("bad_config", `GGUF metadata is missing ${A}.${key}`, {
        file,
        field: `${A}.${key}`,
      });
    }
    return v;
  };

  const hidden = need("embedding_length");
  const heads = need("attention.head_count");
  const emb = tensors.get("token_embd.weight");
  if (emb?.shape.length !== 2) {
    throw new SteerlabError("bad_tensor", "GGUF file has no 2-D token_embd.weight", {
      file,
      field: "token_embd.weight",
    });
  }
  const rope = spec.positional === "rope";
  const headDim = opt("attention.key_length") ?? hidden / heads;
  const ropeDims = opt("rope.dimension_count");
  if (rope && ropeDims !== undefined && ropeDims !== headDim) {
    throw new SteerlabError("unsupported", "partial rotary embeddings are not supported", {
      file,
      field: `${A}.rope.dimension_count`,
      expected: String(headDim),
      got: String(ropeDims),
    });
  }
  // Ids that name no token (0xFFFFFFFF = "none" in real files) are absent; the tokenizer reader warns about them.
  const tokenId = (k: string) => {
    const v = metaNumber(meta, `tokenizer.ggml.${k}`, file);
    return v !== undefined && v >= 0 && v < emb.shape[0]! ? v : undefined;
  };
  // llama.cpp ends generation on any end-of-generation token: eos, and eot / eom where the vocab has them.
  const eos = [...new Set(["eos_token_id", "eot_token_id", "eom_token_id"].map(tokenId))].filter(
    (x): x is number => x !== undefined,
  );
  const c: ModelConfig = {
    arch: spec.name,
    vocabSize: emb.shape[0]!,
    hiddenSize: hidden,
    nLayers: need("block_count"),
    nHeads: heads,
    nKvHeads: opt("attention.head_count_kv") ?? heads,
    headDim,
    intermediateSize: need("feed_forward_length"),
    normEps:
      spec.norm === "rms" ? need("attention.layer_norm_rms_epsilon") : need("attention.layer_norm_epsilon"),
    maxPositions: need("context_length"),
    ropeTheta: rope ? (opt("rope.freq_base") ?? 10000) : 0,
    ropeScaling: null,
    tiedEmbeddings: tied,
    bosTokenId: tokenId("bos_token_id") ?? null,
    eosTokenIds: eos,
  };
  const scalingType = metaString(meta, `${A}.rope.scaling.type`, file);
  if (scalingType === "linear") {
    c.ropeScaling = { type: "linear", factor: need("rope.scaling.factor") };
  } else if (scalingType !== undefined && scalingType !== "none") {
    throw new SteerlabError("unsupported", `unsupported RoPE scaling type "${scalingType}"`, {
      file,
      field: `${A}.rope.scaling.type`,
      expected: "none | linear (or llama3 via rope_freqs.weight)",
      got: scalingType,
    });
  }
  // Counts come from the file: bound them before anything loops over them (see expectedWeights).
  for (const [field, v, max] of [
    ["block_count", c.nLayers, tensors.size],
    ["embedding_length", c.hiddenSize, 1 << 24],
    ["feed_forward_length", c.intermediateSize, 1 << 26],
    ["attention.head_count", c.nHeads, c.hiddenSize],
    ["attention.head_count_kv", c.nKvHeads, c.nHeads],
    ["context_length", c.maxPositions, 2 ** 40],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new SteerlabError("bad_config", `GGUF ${A}.${field} is out of range`, {
        file,
        field: `${A}.${field}`,
        expected: `an integer in [1, ${max}]`,
        got: String(v),
      });
    }
  }
  return [validate(c, file), spec];
}

/** Metadata values unwrapped to plain JS values (what the tokenizer reader takes). */
export function plainMetadata(meta: GgufMetadata): Map<string, unknown> {
  const unwrap = (v: GgufValue): unknown =>
    v.type === "array" && v.itemType === "array" ? (v.value as GgufValue[]).map(unwrap) : v.value;
  return new Map([...meta].map(([k, v]) => [k, unwrap(v)]));
}

// ---------- load ----------

/**
 * True when the embedding is tied: no output.weight, or one byte-identical to token_embd.weight (llama.cpp's
 * llama2.c converter stores the shared matrix twice; reading it once keeps one identity with the HF folder).
 */
function tiedEmbedding(src: ByteSource, infos: Map<string, GgufTensorInfo>): boolean {
  const out = infos.get("output.weight");
  const emb = infos.get("token_embd.weight");
  if (!out) return true;
  if (!emb || out.type !== emb.type || !shapeEquals(out.shape, emb.shape) || out.byteSize !== emb.byteSize) {
    return false;
  }
  const chunk = 1 << 20;
  for (let at = 0; at < out.byteSize; at += chunk) {
    const n = Math.min(chunk, out.byteSize - at);
    const a = src.read(out.offset + at, n, "output.weight");
    const b = src.read(emb.offset + at, n, "token_embd.weight");
    if (Buffer.compare(a, b) !== 0) return false;
  }
  return true;
}

export async function loadGgufModel(file: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const src = fileSource(file);
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    opts.onWarning?.(message);
  };
  try {
    const header = readGgufHeader(src);
    const infos = new Map(header.tensors.map((t) => [t.name, t]));
    const [config, spec] = configFromMeta(header.metadata, infos, file, tiedEmbedding(src, infos));
    const freqs = infos.get(ROPE_FREQS);
    if (freqs && spec.positional === "rope") {
      if (!shapeEquals(freqs.shape, [config.headDim / 2])) {
        throw new SteerlabError(
          "bad_tensor",
          `${ROPE_FREQS} has shape ${fmtShape(freqs.shape)}, expected [${config.headDim / 2}]`,
          {
            file,
            field: ROPE_FREQS,
          },
        );
      }
      const f = readGgufTensor(src, freqs).data;
      const mine = steerlabLlama3(header.metadata, file);
      config.ropeScaling =
        mine && factorsMatch(llama3RopeFactors(config.headDim, config.ropeTheta, mine), f)
          ? mine
          : llama3FromFactors(f, config, file);
    }
    const permute = INTERLEAVED_ROPE.has(spec.ggufArch);
    // Dense matrices (F32/F16/BF16) may be held quantized (LoadDtype); the choice weighs them as f32.
    const denseNeed = header.tensors
      .filter((t) => opts.dense || !NBITS_TYPES.has(t.type))
      .reduce((s, t) => s + 4 * numel(t.shape), 0);
    const dtype = resolveDtype(denseNeed, opts);
    const readers = new Map<string, () => Weight>();
    const rowReaders = new Map<string, (a: number, b: number) => Weight>();
    const types = new Map<string, number | null>();
    const sources = new Map<string, FileTensor>();
    const dtypes: Record<string, number> = {};
    const problems: string[] = [];
    const counted = new Set<string>();
    const q = config.nHeads * config.headDim;
    const kv = config.nKvHeads * config.headDim;
    const partRows = { q: [0, q], k: [q, q + kv], v: [q + kv, q + 2 * kv] } as const;
    for (const [canonical, shape] of expectedWeights(config)) {
      const [name, part] = spec.ggufName(canonical).split(":") as [string, "q" | "k" | "v" | undefined];
      const info = infos.get(name);
      if (!info) {
        problems.push(`missing tensor ${name} (${canonical}, expected shape ${fmtShape(shape)})`);
        continue;
      }
      const fileShape = part ? [q + 2 * kv, ...shape.slice(1)] : shape;
      if (!shapeEquals(info.shape, fileShape)) {
        problems.push(
          `tensor ${name} (${canonical}) has shape ${fmtShape(info.shape)}, expected ${fmtShape(fileShape)}`,
        );
        continue;
      }
      if (!counted.has(name)) {
        counted.add(name);
        const tn = ggmlTypeName(info.type);
        dtypes[tn] = (dtypes[tn] ?? 0) + 1;
      }
      const role = permute ? qkRole(canonical) : null;
      const heads = role === "q" ? config.nHeads : role === "k" ? config.nKvHeads : 0;
      const keep = !opts.dense && info.shape.length === 2 && NBITS_TYPES.has(info.type);
      types.set(canonical, keep ? info.type : storedType(shape, dtype));
      sources.set(canonical, {
        file,
        offset: info.offset,
        ggmlType: info.type,
        shape: info.shape,
        rows: part ? partRows[part] : null,
        interleavedRope: heads > 0,
        transposed: false,
      });
      // Read by byte range when asked for (LazyWeights): the file is reopened, the tensor not kept.
      readers.set(canonical, () => {
        const from = fileSource(file);
        try {
          let t = readWeight(from, info, opts.dense === true);
          if (part) t = sliceRows(t, partRows[part][0], partRows[part][1]);
          if (heads) t = unpermuteQk(t, heads);
          return storeAs(t, dtype);
        } finally {
          from.close();
        }
      });
      // Rows [a, b) alone (the fingerprint's sample): whole heads where q/k rows are permuted within a head.
      if (info.shape.length === 2 && ggmlByteSize(info.type, info.shape[1]!) !== undefined) {
        rowReaders.set(canonical, (a, b) => {
          const hd = heads ? shape[0]! / heads : 1;
          const [ha, hb] = [Math.floor(a / hd) * hd, Math.ceil(b / hd) * hd];
          const at = part ? partRows[part][0] : 0;
          const from = fileSource(file);
          try {
            let t = readWeight(from, fileRows(info, at + ha, at + hb), opts.dense === true);
            if (heads) t = unpermuteQk(t, (hb - ha) / hd);
            return storeAs(sliceRows(t, a - ha, b - ha), dtype);
          } finally {
            from.close();
          }
        });
      }
    }
    if (problems.length) {
      throw new SteerlabError("bad_tensor", `GGUF tensors do not match its metadata: ${problems[0]}`, {
        file,
        problems,
      });
    }
    const weights = new LazyWeights(readers, expectedWeights(config), types, rowReaders, sources);
    const tokenizer = header.metadata.has("tokenizer.ggml.tokens")
      ? await tokenizerFromGguf(plainMetadata(header.metadata), file, warn)
      : null;
    return {
      source: { path: file, format: "gguf" },
      config,
      spec,
      weights,
      tokenizer,
      dtypes,
      fileWeightBytes: header.tensors.reduce((s, t) => s + t.byteSize, 0),
      fingerprint: modelFingerprint(config, weights),
      warnings,
    };
  } finally {
    src.close();
  }
}

// ---------- save ----------

export type GgufWriteDtype =
  | "F32"
  | "F16"
  | "Q8_0"
  | "Q4_0"
  | "Q4_1"
  | "Q5_0"
  | "Q5_1"
  | "Q2_K"
  | "Q3_K"
  | "Q4_K"
  | "Q5_K"
  | "Q6_K";

/** llama_ftype of a file whose matrices are all `dtype` (general.file_type; K-quants as their _S variant). */
const FILE_TYPE: Record<GgufWriteDtype, number> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q5_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 14,
  Q5_K: 16,
  Q6_K: 18,
};

/** Known types of tokenizer keys (llama.cpp checks them); other plain values are typed by their JS type. */
const KEY_TYPES: Record<string, GgufType> = {
  "tokenizer.ggml.scores": "f32",
  "tokenizer.ggml.token_type": "i32",
};

function isGgufValue(v: unknown): v is GgufValue {
  return typeof v === "object" && v !== null && !Array.isArray(v) && "type" in v && "value" in v;
}

/** Type a plain JS value (from ggufTokenizerMetadata): integers u32 (i32 if negative), floats f32. */
export function toGgufValue(key: string, v: unknown): GgufValue {
  if (isGgufValue(v)) return v;
  const num = (x: number): GgufType =>
    (Object.hasOwn(KEY_TYPES, key) ? KEY_TYPES[key] : undefined) ??
    (Number.isInteger(x) ? (x < 0 ? "i32" : "u32") : "f32");
  if (typeof v === "string") return gv.str(v);
  if (typeof v === "boolean") return gv.bool(v);
  if (typeof v === "number") return { type: num(v), value: v };
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === "string")) return gv.arr("str", v);
    if (v.every((x) => typeof x === "number")) {
      const t =
        (Object.hasOwn(KEY_TYPES, key) ? KEY_TYPES[key] : undefined) ??
        (v.every(Number.isInteger) ? "i32" : "f32");
      return gv.arr(t, v as GgufScalar[]);
    }
  }
  throw new SteerlabError("bad_input", `cannot store metadata ${key} in GGUF`, { field: key, got: typeof v });
}

export interface SaveGgufOptions {
  /** tokenizer.ggml.* keys (typed GgufValues or plain values as ggufTokenizerMetadata returns them). */
  tokenizerMeta?: Record<string, unknown>;
  /** Storage type of the 2-D matrices; norms, biases and rope_freqs stay F32 as llama.cpp's converter keeps them. */
  dtype?: GgufWriteDtype;
  name?: string;
  /** Called after each tensor is encoded and written (a 7B file takes minutes). */
  onProgress?: (e: { label: string; done: number; total: number }) => void;
}

/** Write a GGUF file llama.cpp loads. */
export function saveGgufModel(
  file: string,
  config: ModelConfig,
  weights: ModelWeights,
  opts: SaveGgufOptions = {},
): void {
  checkWeights(config, weights, file);
  const spec = ARCHS[config.arch];
  const A = spec.ggufArch;
  const dtype = opts.dtype ?? "F32";
  const rope = spec.positional === "rope";
  const meta: GgufMetadata = new Map();
  meta.set("general.architecture", gv.str(A));
  meta.set("general.name", gv.str(opts.name ?? "steerlab"));
  meta.set("general.file_type", gv.u32(FILE_TYPE[dtype]));
  meta.set(`${A}.context_length`, gv.u32(config.maxPositions));
  meta.set(`${A}.embedding_length`, gv.u32(config.hiddenSize));
  meta.set(`${A}.feed_forward_length`, gv.u32(config.intermediateSize));
  meta.set(`${A}.block_count`, gv.u32(config.nLayers));
  meta.set(`${A}.attention.head_count`, gv.u32(config.nHeads));
  if (rope) meta.set(`${A}.attention.head_count_kv`, gv.u32(config.nKvHeads));
  if (config.headDim * config.nHeads !== config.hiddenSize) {
    meta.set(`${A}.attention.key_length`, gv.u32(config.headDim));
    meta.set(`${A}.attention.value_length`, gv.u32(config.headDim));
  }
  if (spec.norm === "rms") meta.set(`${A}.attention.layer_norm_rms_epsilon`, gv.f32(config.normEps));
  else meta.set(`${A}.attention.layer_norm_epsilon`, gv.f32(config.normEps));
  if (rope) {
    meta.set(`${A}.rope.freq_base`, gv.f32(config.ropeTheta));
    meta.set(`${A}.rope.dimension_count`, gv.u32(config.headDim));
    meta.set(`${A}.vocab_size`, gv.u32(config.vocabSize));
  }
  const rs = config.ropeScaling;
  const tensors: GgufTensorOut[] = [];
  if (rs?.type === "linear") {
    meta.set(`${A}.rope.scaling.type`, gv.str("linear"));
    meta.set(`${A}.rope.scaling.factor`, gv.f32(rs.factor));
  } else if (rs?.type === "llama3") {
    meta.set("steerlab.rope_scaling.factor", gv.f32(rs.factor));
    meta.set("steerlab.rope_scaling.low_freq_factor", gv.f32(rs.lowFreqFactor));
    meta.set("steerlab.rope_scaling.high_freq_factor", gv.f32(rs.highFreqFactor));
    meta.set("steerlab.rope_scaling.original_max_positions", gv.f32(rs.originalMaxPositions));
    const f = llama3RopeFactors(config.headDim, config.ropeTheta, rs);
    tensors.push({
      name: ROPE_FREQS,
      shape: [f.length],
      type: GGML_TYPE.F32,
      data: quantize(GGML_TYPE.F32, f),
    });
  }
  for (const [k, v] of Object.entries(opts.tokenizerMeta ?? {})) meta.set(k, toGgufValue(k, v));
  // The config's special ids, unless the tokenizer metadata says otherwise (they are config facts too).
  if (!meta.has("tokenizer.ggml.bos_token_id") && config.bosTokenId !== null) {
    meta.set("tokenizer.ggml.bos_token_id", gv.u32(config.bosTokenId));
  }
  if (!meta.has("tokenizer.ggml.eos_token_id") && config.eosTokenIds.length) {
    meta.set("tokenizer.ggml.eos_token_id", gv.u32(config.eosTokenIds[0]!));
  }

  const permute = INTERLEAVED_ROPE.has(A);
  const q = config.nHeads * config.headDim;
  const kv = config.nKvHeads * config.headDim;
  // Tensors are made (permuted, fused, quantized) lazily, one at a time as the writer reaches them.
  const encode = (name: string, shape: readonly number[], make: () => Tensor) => {
    // Matrices take the requested type when their rows fit its blocks (else Q8_0 or F16, as llama.cpp falls
    // back for rows that are not whole blocks).
    let type: number = GGML_TYPE.F32;
    if (shape.length === 2 && dtype !== "F32") {
      type = GGML_TYPE[dtype];
      const block = ggmlTypeInfo(type)!.block;
      if (shape[1]! % block !== 0) type = shape[1]! % 32 === 0 ? GGML_TYPE.Q8_0 : GGML_TYPE.F16;
    }
    tensors.push({ name, shape, type, data: () => quantize(type, make().data) });
  };
  const parts = new Map<string, Tensor[]>();
  const expected = expectedWeights(config);
  for (const canonical of expected.keys()) {
    // Read (or dequantize) each tensor only when the writer reaches it: LazyWeights stream from file to file.
    const wShape = expected.get(canonical)!;
    const [name, part] = spec.ggufName(canonical).split(":") as [string, "q" | "k" | "v" | undefined];
    const role = qkRole(canonical);
    const heads = role === "q" ? config.nHeads : role === "k" ? config.nKvHeads : 0;
    const t = () => {
      const w = denseWeight(weights.get(canonical)!);
      return permute && heads ? permuteQk(w, heads) : w;
    };
    if (!part) {
      encode(name, wShape, t);
      continue;
    }
    // Fused qkv: rows q, then k, then v (the spec lists them in that order).
    const got = [...(parts.get(name) ?? []), t()];
    parts.set(name, got);
    if (part !== "v") continue;
    parts.delete(name);
    const cols = wShape.length > 1 ? wShape[1]! : 1;
    const shape = [q + 2 * kv, ...wShape.slice(1)];
    encode(name, shape, () => {
      const f = tensor(shape);
      let at = 0;
      for (const p of got) {
        f.data.set(p.data, at);
        at += p.data.length;
      }
      if (at !== (q + 2 * kv) * cols) {
        throw new SteerlabError("bad_input", `fused ${name}: q, k and v do not fill ${fmtShape(shape)}`, {
          field: name,
        });
      }
      return f;
    });
  }
  const progress = opts.onProgress;
  const out = progress
    ? tensors.map((t, i) => ({
        ...t,
        data: () => {
          const b = typeof t.data === "function" ? t.data() : t.data;
          progress({ label: "writing tensors", done: i + 1, total: tensors.length });
          return b;
        },
      }))
    : tensors;
  writeGguf(file, meta, out);
}
