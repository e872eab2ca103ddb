/**
 * safetensors: u64 LE header length | JSON header | raw tensor bytes.
 * Header: { "__metadata__"?: {string: string}, name: { dtype, shape, data_offsets: [begin, end] } }, offsets
 * relative to the start of the data section. Every field is validated before any tensor byte is read, and
 * reading goes through a ByteSource, so a hostile file gives a SteerlabError("bad_file"), never a crash.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { fmtShape, numel, type Tensor, tensor } from "../tensor.js";
import { type ByteSource, bufferSource, withFile } from "./byte-source.js";
import { readTextFile } from "./files.js";
import { bf16ToF32, f16ToF32, f32FromBytes, f32ToBf16, f32ToF16 } from "./gguf-quant.js";
import { makeDir, writeFileAtomic, writeFileAtomicWith } from "./write-atomic.js";

/** Bytes per element of every safetensors dtype (so headers with any of them validate). */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

/** Dtypes steerlab decodes to f32. */
export type StReadDtype = "F64" | "F32" | "F16" | "BF16";
export type StWriteDtype = "F32" | "F16" | "BF16";

/** Headers above this are refused: real ones are a few hundred KiB. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface StTensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  metadata: Record<string, string>;
  tensors: Map<string, StTensorInfo>;
}

function bad(file: string, message: string, field: string, expected?: string, got?: string): SteerlabError {
  return new SteerlabError("bad_file", message, { file, field, expected, got });
}

/** Parse and validate the header; reads only the first 8 + n bytes. */
export function readSafetensorsHeader(src: ByteSource): SafetensorsHeader {
  const file = src.file;
  const lenBytes = src.read(0, 8, "header length");
  const len = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (len > MAX_HEADER_BYTES || len < 2) {
    throw bad(
      file,
      "implausible safetensors header length",
      "header length",
      `2..${MAX_HEADER_BYTES}`,
      `${len}`,
    );
  }
  if (8 + len > src.size) {
    throw bad(
      file,
      "safetensors header runs past the end of the file",
      "header length",
      `<= ${src.size - 8}`,
      `${len}`,
    );
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(src.read(8, len, "header"));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(file, "safetensors header is not valid JSON", "header", "a JSON object", (e as Error).message);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw bad(file, "safetensors header is not a JSON object", "header", "an object", typeof json);
  }
  const dataStart = 8 + len;
  const dataSize = src.size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, StTensorInfo>();
  const problems: string[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof v !== "object" || v === null || Array.isArray(v)) {
        problems.push(`__metadata__ is not an object`);
        continue;
      }
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== "string") problems.push(`__metadata__.${k} is not a string`);
        // defineProperty: a key "__proto__" stays a plain key instead of replacing the prototype.
        else
          Object.defineProperty(metadata, k, {
            value: s,
            enumerable: true,
            writable: true,
            configurable: true,
          });
      }
      continue;
    }
    const p = checkEntry(name, v, dataSize);
    if (typeof p === "string") problems.push(p);
    else tensors.set(name, { ...p, begin: p.begin + dataStart, end: p.end + dataStart });
  }
  // Overlaps: sort by start and compare neighbours.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.begin < a.end && b.end > b.begin)
      problems.push(`tensor ${b.name}: data_offsets overlap tensor ${a.name}`);
  }
  if (problems.length) {
    throw new SteerlabError("bad_file", `invalid safetensors header: ${problems[0]}`, {
      file,
      field: "header",
      problems,
    });
  }
  return { file, metadata, tensors };
}

/** Validate one header entry; returns the info (offsets relative to the data section) or a problem string. */
function checkEntry(name: string, v: unknown, dataSize: number): StTensorInfo | string {
  if (typeof v !== "object" || v === null) return `tensor ${name}: entry is not an object`;
  const e = v as Record<string, unknown>;
  const dtype = e.dtype;
  if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    return `tensor ${name}: field dtype: unknown dtype ${JSON.stringify(dtype)}`;
  }
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    return `tensor ${name}: field shape: expected an array of non-negative integers, got ${JSON.stringify(shape)}`;
  }
  const off = e.data_offsets;
  if (
    !Array.isArray(off) ||
    off.length !== 2 ||
    !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
    off[0] > off[1]
  ) {
    return `tensor ${name}: field data_offsets: expected [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`;
  }
  const [begin, end] = off as [number, number];
  if (end > dataSize) {
    return `tensor ${name}: field data_offsets: end ${end} is past the data section (${dataSize} bytes)`;
  }
  const want = numel(shape as number[]) * DTYPE_BYTES[dtype]!;
  if (end - begin !== want) {
    return `tensor ${name}: field data_offsets: ${end - begin} bytes, but shape ${fmtShape(shape as number[])} of ${dtype} needs ${want}`;
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Decode one tensor to f32. */
export function readSafetensorsTensor(src: ByteSource, info: StTensorInfo): Tensor {
  const n = numel(info.shape);
  const bytes = src.read(info.begin, info.end - info.begin, `tensor ${info.name}`);
  return tensor(info.shape, decodeFloats(bytes, info.dtype, n, src.file, info.name));
}

function decodeFloats(b: Uint8Array, dtype: string, n: number, file: string, name: string): Float32Array {
  if (dtype === "F32") return f32FromBytes(b, n);
  const out = new Float32Array(n);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (dtype) {
    case "F64":
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(2 * i, true));
      return out;
    case "BF16":
      for (let i = 0; i < n; i++) out[i] = bf16ToF32(dv.getUint16(2 * i, true));
      return out;
    default:
      throw new SteerlabError(
        "unsupported",
        `tensor ${name} has dtype ${dtype}, which steerlab cannot load`,
        {
          file,
          field: `${name}.dtype`,
          expected: "F32 | F16 | BF16 | F64",
          got: dtype,
        },
      );
  }
}

export interface SafetensorsContents {
  metadata: Record<string, string>;
  tensors: Map<string, Tensor>;
  /** Storage dtype of each tensor. */
  dtypes: Map<string, string>;
}

function readAll(src: ByteSource): SafetensorsContents {
  const h = readSafetensorsHeader(src);
  const tensors = new Map<string, Tensor>();
  const dtypes = new Map<string, string>();
  for (const info of h.tensors.values()) {
    tensors.set(info.name, readSafetensorsTensor(src, info));
    dtypes.set(info.name, info.dtype);
  }
  return { metadata: h.metadata, tensors, dtypes };
}

/** Read a whole .safetensors file (header first, then each tensor). */
export function readSafetensors(path: string): SafetensorsContents {
  return withFile(path, readAll);
}

/** Parse an in-memory safetensors image (used by tests and fuzzing). */
export function parseSafetensors(buf: Uint8Array, file = "<buffer>"): SafetensorsContents {
  return readAll(bufferSource(buf, file));
}

function encodeFloats(t: Tensor, dtype: StWriteDtype): Uint8Array {
  const d = t.data;
  if (dtype === "F32") return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  const out = new Uint8Array(2 * d.length);
  const enc = dtype === "F16" ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < d.length; i++) {
    const h = enc(d[i]!);
    out[2 * i] = h & 255;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

/** The header bytes (length prefix included) for tensors written in order as `dtype`. */
function headerBytes(
  tensors: readonly [string, Tensor][],
  dtype: StWriteDtype,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const n = stByteSize(t, dtype);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + n] };
    offset += n;
  }
  // Pad the JSON with spaces to a multiple of 8 bytes, as the reference writer does: the data stays aligned.
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const hb = Buffer.from(json, "utf8");
  const out = new Uint8Array(8 + hb.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  return out;
}

type StWriteOptions = { dtype?: StWriteDtype; metadata?: Record<string, string> };

/** Encode tensors (in the given order) as an in-memory safetensors image. */
export function encodeSafetensors(
  tensors: Iterable<[string, Tensor]>,
  opts: StWriteOptions = {},
): Uint8Array {
  const dtype = opts.dtype ?? "F32";
  const list = [...tensors];
  const head = headerBytes(list, dtype, opts.metadata);
  const out = new Uint8Array(head.length + list.reduce((s, [, t]) => s + stByteSize(t, dtype), 0));
  out.set(head);
  let p = head.length;
  for (const [, t] of list) {
    const b = encodeFloats(t, dtype);
    out.set(b, p);
    p += b.length;
  }
  return out;
}

/** Write a safetensors file, streaming one tensor at a time (no whole-file buffer). */
export function writeSafetensors(
  path: string,
  tensors: Iterable<[string, Tensor]>,
  opts: StWriteOptions = {},
): void {
  const dtype = opts.dtype ?? "F32";
  const list = [...tensors];
  writeFileAtomicWith(path, (write) => {
    write(headerBytes(list, dtype, opts.metadata));
    for (const [, t] of list) write(encodeFloats(t, dtype));
  });
}

/** Bytes a tensor occupies when written as `dtype`. */
export function stByteSize(t: Tensor, dtype: StWriteDtype): number {
  return t.data.length * DTYPE_BYTES[dtype]!;
}

/** The shard files of a checkpoint folder: the index's weight_map, or the single model.safetensors. */
export function safetensorsShards(dir: string): { files: string[]; weightMap: Map<string, string> | null } {
  const indexPath = join(dir, "model.safetensors.index.json");
  if (existsSync(indexPath)) {
    let j: unknown;
    try {
      j = JSON.parse(readTextFile(indexPath, "safetensors index"));
    } catch (e) {
      throw bad(indexPath, "index is not valid JSON", "index", "JSON", (e as Error).message);
    }
    const wm = (j as { weight_map?: unknown } | null)?.weight_map;
    if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
      throw bad(indexPath, "index has no weight_map object", "weight_map", "an object", typeof wm);
    }
    const weightMap = new Map<string, string>();
    for (const [name, f] of Object.entries(wm)) {
      // Shard names must stay inside the folder.
      if (typeof f !== "string" || f.includes("/") || f.includes("\\") || f.startsWith(".")) {
        throw bad(
          indexPath,
          `bad shard file name for ${name}`,
          `weight_map.${name}`,
          "a file name",
          String(f),
        );
      }
      weightMap.set(name, f);
    }
    return { files: [...new Set(weightMap.values())].sort(), weightMap };
  }
  if (existsSync(join(dir, "model.safetensors"))) return { files: ["model.safetensors"], weightMap: null };
  throw new SteerlabError("not_found", "no safetensors weights in folder", {
    file: dir,
    expected: "model.safetensors or model.safetensors.index.json",
    hint: existsSync(join(dir, "pytorch_model.bin"))
      ? "this folder has PyTorch .bin weights only: save it with safe_serialization=True (or convert it) first"
      : undefined,
  });
}

/**
 * Write tensors as one file or, when their size exceeds shardBytes, as model-0000i-of-0000n.safetensors shards
 * plus model.safetensors.index.json (the layout transformers writes).
 */
export function writeSafetensorsDir(
  dir: string,
  tensors: [string, Tensor][],
  opts: { dtype?: StWriteDtype; shardBytes?: number; metadata?: Record<string, string> } = {},
): string[] {
  const dtype = opts.dtype ?? "F32";
  const metadata = opts.metadata ?? { format: "pt" };
  makeDir(dir);
  const limit = opts.shardBytes ?? Number.POSITIVE_INFINITY;
  const shards: [string, Tensor][][] = [[]];
  let size = 0;
  let total = 0;
  for (const entry of tensors) {
    const b = stByteSize(entry[1], dtype);
    total += b;
    if (size > 0 && size + b > limit) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(entry);
    size += b;
  }
  if (shards.length === 1) {
    writeSafetensors(join(dir, "model.safetensors"), shards[0]!, { dtype, metadata });
    return ["model.safetensors"];
  }
  const pad = (i: number) => String(i).padStart(5, "0");
  const names = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((s, i) => {
    writeSafetensors(join(dir, names[i]!), s, { dtype, metadata });
    for (const [n] of s) weightMap[n] = names[i]!;
  });
  writeFileAtomic(
    join(dir, "model.safetensors.index.json"),
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  );
  return names;
}
