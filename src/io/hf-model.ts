/**
 * Hugging Face checkpoint folders: config.json + safetensors (single file or sharded with an index) +
 * tokenizer.json. Maps HF tensor names to canonical names through spec.hfName (src/model/weights.ts).
 *
 * GPT-2 stores its linears as Conv1D, [in, out], and fuses q, k and v into c_attn [D, q + 2 kv]; a spec name
 * "h.0.attn.c_attn.weight:q" means "the q slice of that fused tensor". Canonical weights are [out, in], so these
 * are transposed (and split) on load and transposed back (and fused) on save.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { archSpec } from "../model/arch/registry.js";
import type { ArchSpec } from "../model/arch/spec.js";
import { type ModelConfig, parseHfConfig, toHfConfig } from "../model/config.js";
import { modelFingerprint } from "../model/fingerprint.js";
import type { LoadedModel, LoadOptions } from "../model/model.js";
import {
  checkWeights,
  expectedWeights,
  type FileTensor,
  f32Bytes,
  LazyWeights,
  resolveDtype,
  storeAs,
  storedType,
  type Weight,
  type Weights,
} from "../model/weights.js";
import { fmtShape, shapeEquals, type Tensor, tensor } from "../tensor.js";
import { type ByteSource, fileSource } from "./byte-source.js";
import { readTextFile } from "./files.js";
import { GGML_TYPE } from "./gguf-quant.js";
import {
  readSafetensorsHeader,
  readSafetensorsTensor,
  type StTensorInfo,
  type StWriteDtype,
  safetensorsShards,
  writeSafetensorsDir,
} from "./safetensors.js";
import { loadTokenizerFromHfDir } from "./tokenizer.js";
import { makeDir, writeFileAtomic } from "./write-atomic.js";

/** Canonical linear weights (not embeddings or norms): the ones a Conv1D checkpoint stores transposed. */
function isLinearWeight(canonical: string): boolean {
  return /^blocks\.\d+\.(attn|mlp)\.\w+\.weight$/.test(canonical);
}

interface HfRef {
  /** Tensor name in the file (without the ":q" part suffix). */
  name: string;
  part: "q" | "k" | "v" | null;
}

function hfRef(spec: ArchSpec, canonical: string): HfRef {
  const [name, part] = spec.hfName(canonical).split(":");
  return { name: name!, part: (part as HfRef["part"]) ?? null };
}

/** Row ranges of q, k and v inside a fused qkv projection. */
function qkvRanges(c: ModelConfig): Record<"q" | "k" | "v", [number, number]> {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  return { q: [0, q], k: [q, q + kv], v: [q + kv, q + 2 * kv] };
}

function readJson(path: string): Record<string, unknown> {
  const text = readTextFile(path, "model config");
  try {
    const j = JSON.parse(text);
    if (typeof j !== "object" || j === null || Array.isArray(j)) throw new Error("not a JSON object");
    return j as Record<string, unknown>;
  } catch (e) {
    throw new SteerlabError("bad_file", `${path} is not a JSON object`, {
      file: path,
      got: (e as Error).message,
    });
  }
}

function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c); // [c, r]
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return tensor([c, r], out);
}

/** Open a Hugging Face model folder: config, tokenizer, and canonical weights read when asked for (LazyWeights). */
export async function loadHfModel(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const configPath = join(dir, "config.json");
  const config = parseHfConfig(readJson(configPath), configPath);
  const spec = archSpec(config.arch, configPath);
  const { files } = safetensorsShards(dir);
  const sources: ByteSource[] = [];
  try {
    // Every tensor of every shard, by name.
    const where = new Map<string, { path: string; info: StTensorInfo }>();
    let fileWeightBytes = 0;
    for (const f of files) {
      const src = fileSource(join(dir, f));
      sources.push(src);
      for (const info of readSafetensorsHeader(src).tensors.values()) {
        where.set(info.name, { path: join(dir, f), info });
        fileWeightBytes += info.end - info.begin;
      }
    }
    // Every block has several tensors: a block count above the tensor count is a wrong config, and listing
    // its expected weights would take unbounded time and memory.
    if (config.nLayers > where.size) {
      throw new SteerlabError("bad_config", "config has more layers than the checkpoint has tensors", {
        file: configPath,
        field: "num_hidden_layers",
        expected: `<= ${where.size}`,
        got: String(config.nLayers),
      });
    }
    const dtype = resolveDtype(f32Bytes(config), opts);
    const find = (name: string) =>
      where.get(name) ?? where.get(`transformer.${name}`) ?? where.get(name.replace(/^model\./, ""));
    const conv1d = spec.hf.linears === "conv1d";
    const ranges = qkvRanges(config);
    const readers = new Map<string, () => Weight>();
    const rowReaders = new Map<string, (a: number, b: number) => Weight>();
    const types = new Map<string, number | null>();
    const locations = new Map<string, FileTensor>();
    const dtypes: Record<string, number> = {};
    const used = new Set<string>();
    const problems: string[] = [];
    for (const [canonical, shape] of expectedWeights(config)) {
      const ref = hfRef(spec, canonical);
      const hit = find(ref.name);
      if (!hit) {
        problems.push(`missing tensor ${ref.name} (${canonical}, expected shape ${fmtShape(shape)})`);
        continue;
      }
      const linear = conv1d && isLinearWeight(canonical);
      // The shape the file should have for this tensor.
      let fileShape: number[] = linear ? [...shape].reverse() : [...shape];
      if (ref.part) {
        const total = ranges.v[1];
        fileShape = shape.length === 1 ? [total] : linear ? [shape[1]!, total] : [total, shape[1]!];
      }
      if (!shapeEquals(hit.info.shape, fileShape)) {
        problems.push(
          `tensor ${hit.info.name} (${canonical}) has shape ${fmtShape(hit.info.shape)}, expected ${fmtShape(fileShape)}`,
        );
        continue;
      }
      if (!used.has(hit.info.name)) {
        used.add(hit.info.name);
        dtypes[hit.info.dtype] = (dtypes[hit.info.dtype] ?? 0) + 1;
      }
      types.set(canonical, storedType(shape, dtype));
      const ggmlType = Object.hasOwn(GGML_OF_DTYPE, hit.info.dtype)
        ? GGML_OF_DTYPE[hit.info.dtype]
        : undefined;
      if (ggmlType !== undefined)
        locations.set(canonical, {
          file: hit.path,
          offset: hit.info.begin,
          ggmlType,
          shape: hit.info.shape,
          rows: ref.part ? ranges[ref.part] : null,
          interleavedRope: false,
          transposed: linear,
        });
      // Read by byte range when asked for (LazyWeights): the shard is reopened, the tensor not kept.
      readers.set(canonical, () => {
        const src = fileSource(hit.path);
        let t: Tensor;
        try {
          t = readSafetensorsTensor(src, hit.info);
        } finally {
          src.close();
        }
        if (ref.part) {
          const [a, b] = ranges[ref.part];
          if (t.shape.length === 1) t = tensor([b - a], t.data.slice(a, b));
          else if (linear) t = transpose2d(sliceCols(t, a, b));
          else t = tensor([b - a, t.shape[1]!], t.data.slice(a * t.shape[1]!, b * t.shape[1]!));
        } else if (linear) {
          t = transpose2d(t);
        }
        return storeAs(t, dtype);
      });
      // Rows [a, b) alone (the fingerprint's sample), where file rows are canonical rows (not conv1d).
      const size = Object.hasOwn(ELEMENT_BYTES, hit.info.dtype) ? ELEMENT_BYTES[hit.info.dtype] : undefined;
      if (!linear && shape.length === 2 && size) {
        const at = ref.part ? ranges[ref.part][0] : 0;
        const rowBytes = shape[1]! * size;
        rowReaders.set(canonical, (a, b) => {
          const begin = hit.info.begin + (at + a) * rowBytes;
          const part = { ...hit.info, shape: [b - a, shape[1]!], begin, end: begin + (b - a) * rowBytes };
          const src = fileSource(hit.path);
          try {
            return storeAs(readSafetensorsTensor(src, part), dtype);
          } finally {
            src.close();
          }
        });
      }
    }
    if (problems.length) {
      throw new SteerlabError("bad_tensor", `checkpoint does not match its config: ${problems[0]}`, {
        file: dir,
        problems,
        hint: "check that config.json belongs to these weights",
      });
    }
    const weights = new LazyWeights(readers, expectedWeights(config), types, rowReaders, locations);
    const tokenizer = existsSync(join(dir, "tokenizer.json")) ? await loadTokenizerFromHfDir(dir) : null;
    return {
      source: { path: dir, format: "hf" },
      config,
      spec,
      weights,
      tokenizer,
      dtypes,
      fileWeightBytes,
      fingerprint: modelFingerprint(config, weights),
      warnings: [],
    };
  } finally {
    for (const s of sources) s.close();
  }
}

/** ggml types of the safetensors dtypes ggml computes on (F64 has none). */
const GGML_OF_DTYPE: Record<string, number> = {
  F32: GGML_TYPE.F32,
  F16: GGML_TYPE.F16,
  BF16: GGML_TYPE.BF16,
};

/** Bytes per value of the safetensors dtypes readSafetensorsTensor decodes. */
const ELEMENT_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/** Columns [a, b) of a 2-D tensor. */
function sliceCols(t: Tensor, a: number, b: number): Tensor {
  const [r, c] = t.shape as [number, number];
  const w = b - a;
  const out = new Float32Array(r * w); // [r, b - a]
  for (let i = 0; i < r; i++) out.set(t.data.subarray(i * c + a, i * c + b), i * w);
  return tensor([r, w], out);
}

export interface SaveHfOptions {
  tokenizerJson?: object;
  tokenizerConfig?: object;
  dtype?: StWriteDtype;
  /** Split the weights into shards of at most this many bytes (plus model.safetensors.index.json). */
  shardBytes?: number;
}

/** The HF tensors of canonical weights, in canonical order (fused and transposed where the format wants it). */
export function toHfTensors(config: ModelConfig, weights: Weights): [string, Tensor][] {
  const spec = archSpec(config.arch);
  const conv1d = spec.hf.linears === "conv1d";
  const ranges = qkvRanges(config);
  const out: [string, Tensor][] = [];
  const fusedAt = new Map<string, Tensor>();
  for (const canonical of expectedWeights(config).keys()) {
    const t = weights.get(canonical)!;
    const ref = hfRef(spec, canonical);
    const linear = conv1d && isLinearWeight(canonical);
    if (!ref.part) {
      out.push([ref.name, linear ? transpose2d(t) : t]);
      continue;
    }
    let f = fusedAt.get(ref.name);
    const total = ranges.v[1];
    if (!f) {
      f = tensor(t.shape.length === 1 ? [total] : linear ? [t.shape[1]!, total] : [total, t.shape[1]!]);
      fusedAt.set(ref.name, f);
      out.push([ref.name, f]);
    }
    const [a] = ranges[ref.part];
    if (t.shape.length === 1) f.data.set(t.data, a);
    else if (!linear) f.data.set(t.data, a * t.shape[1]!);
    else {
      // part [n, D] -> columns a..a+n of fused [D, total]
      const [n, d] = t.shape as [number, number];
      for (let j = 0; j < n; j++) for (let i = 0; i < d; i++) f.data[i * total + a + j] = t.data[j * d + i]!;
    }
  }
  return out;
}

/** Write a Hugging Face folder: config.json, safetensors (optionally sharded), tokenizer files if given. */
export function saveHfModel(
  dir: string,
  config: ModelConfig,
  weights: Weights,
  opts: SaveHfOptions = {},
): void {
  checkWeights(config, weights, dir);
  makeDir(dir);
  // torch_dtype tells transformers which precision the weights were saved in.
  const torchDtype = { F32: "float32", F16: "float16", BF16: "bfloat16" }[opts.dtype ?? "F32"];
  const hfConfig = { ...toHfConfig(config), torch_dtype: torchDtype };
  writeFileAtomic(join(dir, "config.json"), `${JSON.stringify(hfConfig, null, 2)}\n`);
  writeSafetensorsDir(dir, toHfTensors(config, weights), { dtype: opts.dtype, shardBytes: opts.shardBytes });
  if (opts.tokenizerJson) writeFileAtomic(join(dir, "tokenizer.json"), JSON.stringify(opts.tokenizerJson));
  if (opts.tokenizerConfig) {
    writeFileAtomic(join(dir, "tokenizer_config.json"), `${JSON.stringify(opts.tokenizerConfig, null, 2)}\n`);
  }
}
