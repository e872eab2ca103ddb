/**
 * GGUF container (v2 and v3; llama.cpp's ggml/docs/gguf.md), little-endian:
 *   "GGUF" | u32 version | u64 n_tensors | u64 n_kv | kv[n_kv] | tensor_info[n_tensors] | pad | data
 *   kv          = string key | u32 value_type | value
 *   string      = u64 byte length | utf-8 bytes
 *   array       = u32 item_type | u64 count | items
 *   tensor_info = string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset (from data start)
 * ne[0] is the fastest-varying dimension, so the row-major shape is ne reversed. The data section starts at the
 * first multiple of general.alignment (default 32) after the infos; every tensor offset is a multiple of it.
 * Every count and length is checked against the bytes left before anything is allocated.
 */
import { SteerlabError } from "../errors.js";
import { fmtShape, numel, type Tensor, tensor } from "../tensor.js";
import { type ByteSource, bufferSource, withFile } from "./byte-source.js";
import { dequantize, ggmlByteSize, ggmlTypeInfo, ggmlTypeName } from "./gguf-quant.js";
import { writeFileAtomicWith } from "./write-atomic.js";

/** GGUF metadata value types, by their on-disk ids. */
export const GGUF_TYPES = [
  "u8",
  "i8",
  "u16",
  "i16",
  "u32",
  "i32",
  "f32",
  "bool",
  "str",
  "array",
  "u64",
  "i64",
  "f64",
] as const;
export type GgufType = Exclude<(typeof GGUF_TYPES)[number], "array">;
export type GgufScalar = number | bigint | boolean | string;

/** A typed metadata value: the type is kept so that files round-trip and llama.cpp's type checks pass. */
export type GgufValue =
  | { type: GgufType; value: GgufScalar }
  | { type: "array"; itemType: GgufType; value: GgufScalar[] }
  | { type: "array"; itemType: "array"; value: GgufValue[] };

export type GgufMetadata = Map<string, GgufValue>;

/** Constructors for typed values. */
export const gv = {
  u32: (v: number): GgufValue => ({ type: "u32", value: v }),
  i32: (v: number): GgufValue => ({ type: "i32", value: v }),
  f32: (v: number): GgufValue => ({ type: "f32", value: v }),
  bool: (v: boolean): GgufValue => ({ type: "bool", value: v }),
  str: (v: string): GgufValue => ({ type: "str", value: v }),
  arr: (itemType: GgufType, value: GgufScalar[]): GgufValue => ({ type: "array", itemType, value }),
};

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape (ne reversed). */
  shape: number[];
  /** ggml_type id. */
  type: number;
  /** Absolute byte offset in the file. */
  offset: number;
  byteSize: number;
}

export interface GgufHeader {
  file: string;
  version: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  alignment: number;
  dataStart: number;
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const MAX_DIMS = 4;
const MAX_ARRAY_DEPTH = 4;
/** Smallest encodings, used to bound counts by the bytes left. */
const MIN_KV_BYTES = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8;
const SCALAR_BYTES: Record<GgufType, number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  str: 8,
  u64: 8,
  i64: 8,
  f64: 8,
};

/** A forward cursor over a ByteSource with a read-ahead window, so thousands of small fields cost few reads. */
class Cursor {
  pos = 0;
  private win: Uint8Array = new Uint8Array(0);
  private winStart = 0;
  private dv: DataView = new DataView(new ArrayBuffer(0));
  constructor(readonly src: ByteSource) {}

  get left(): number {
    return this.src.size - this.pos;
  }

  private need(n: number, what: string): number {
    if (this.pos + n > this.winStart + this.win.length) {
      if (this.pos + n > this.src.size) {
        throw new SteerlabError("bad_file", `GGUF file is truncated while reading ${what}`, {
          file: this.src.file,
          field: what,
          expected: `${n} bytes at offset ${this.pos}`,
          got: `file size ${this.src.size}`,
        });
      }
      const len = Math.min(Math.max(n, 1 << 20), this.src.size - this.pos);
      this.win = this.src.read(this.pos, len, what);
      this.winStart = this.pos;
      this.dv = new DataView(this.win.buffer, this.win.byteOffset, this.win.byteLength);
    }
    const at = this.pos - this.winStart;
    this.pos += n;
    return at;
  }

  u8(w: string) {
    const o = this.need(1, w);
    return this.dv.getUint8(o);
  }
  i8(w: string) {
    const o = this.need(1, w);
    return this.dv.getInt8(o);
  }
  u16(w: string) {
    const o = this.need(2, w);
    return this.dv.getUint16(o, true);
  }
  i16(w: string) {
    const o = this.need(2, w);
    return this.dv.getInt16(o, true);
  }
  u32(w: string) {
    const o = this.need(4, w);
    return this.dv.getUint32(o, true);
  }
  i32(w: string) {
    const o = this.need(4, w);
    return this.dv.getInt32(o, true);
  }
  f32(w: string) {
    const o = this.need(4, w);
    return this.dv.getFloat32(o, true);
  }
  f64(w: string) {
    const o = this.need(8, w);
    return this.dv.getFloat64(o, true);
  }
  u64big(w: string) {
    const o = this.need(8, w);
    return this.dv.getBigUint64(o, true);
  }
  i64big(w: string) {
    const o = this.need(8, w);
    return this.dv.getBigInt64(o, true);
  }
  /** A u64 used as a count or size: must fit a safe integer and the bytes left (each item >= minItemBytes). */
  count(w: string, minItemBytes: number): number {
    const v = this.u64big(w);
    const max = Math.floor(this.left / Math.max(minItemBytes, 1));
    if (v > BigInt(max)) {
      throw new SteerlabError("bad_file", `GGUF ${w} is larger than the file can hold`, {
        file: this.src.file,
        field: w,
        expected: `<= ${max}`,
        got: v.toString(),
      });
    }
    return Number(v);
  }
  str(w: string): string {
    const n = this.count(`${w} (string length)`, 1);
    const at = this.need(n, w);
    return new TextDecoder().decode(this.win.subarray(at, at + n));
  }
}

function typeOf(id: number, c: Cursor, w: string): GgufType | "array" {
  const t = GGUF_TYPES[id];
  if (t === undefined) {
    throw new SteerlabError("bad_file", `unknown GGUF value type ${id}`, {
      file: c.src.file,
      field: w,
      expected: `0..${GGUF_TYPES.length - 1}`,
      got: String(id),
    });
  }
  return t;
}

/** u64/i64 become numbers when exact, bigints otherwise. */
function small(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function readScalar(c: Cursor, t: GgufType, w: string): GgufScalar {
  switch (t) {
    case "u8":
      return c.u8(w);
    case "i8":
      return c.i8(w);
    case "u16":
      return c.u16(w);
    case "i16":
      return c.i16(w);
    case "u32":
      return c.u32(w);
    case "i32":
      return c.i32(w);
    case "f32":
      return c.f32(w);
    case "bool": {
      const b = c.u8(w);
      if (b > 1)
        throw new SteerlabError("bad_file", "GGUF bool is not 0 or 1", {
          file: c.src.file,
          field: w,
          got: String(b),
        });
      return b === 1;
    }
    case "str":
      return c.str(w);
    case "u64":
      return small(c.u64big(w));
    case "i64":
      return small(c.i64big(w));
    case "f64":
      return c.f64(w);
  }
}

function readValue(c: Cursor, t: GgufType | "array", w: string, depth: number): GgufValue {
  if (t !== "array") return { type: t, value: readScalar(c, t, w) };
  if (depth >= MAX_ARRAY_DEPTH) {
    throw new SteerlabError("bad_file", "GGUF arrays nested too deeply", { file: c.src.file, field: w });
  }
  const itemType = typeOf(c.u32(`${w} (array type)`), c, w);
  const n = c.count(`${w} (array length)`, itemType === "array" ? 12 : SCALAR_BYTES[itemType]);
  if (itemType === "array") {
    const value: GgufValue[] = [];
    for (let i = 0; i < n; i++) value.push(readValue(c, "array", `${w}[${i}]`, depth + 1));
    return { type: "array", itemType, value };
  }
  const value: GgufScalar[] = new Array(n);
  for (let i = 0; i < n; i++) value[i] = readScalar(c, itemType, w);
  return { type: "array", itemType, value };
}

/** Parse and validate the header (metadata and tensor infos); reads no tensor data. */
export function readGgufHeader(src: ByteSource): GgufHeader {
  const file = src.file;
  const c = new Cursor(src);
  const magic = c.u32("magic");
  if (magic !== MAGIC) {
    throw new SteerlabError("bad_file", "not a GGUF file (bad magic)", {
      file,
      field: "magic",
      expected: '"GGUF"',
      got: `0x${magic.toString(16)}`,
    });
  }
  const version = c.u32("version");
  if (version !== 2 && version !== 3) {
    throw new SteerlabError(
      version === 1 ? "unsupported" : "bad_file",
      `unsupported GGUF version ${version}`,
      {
        file,
        field: "version",
        expected: "2 or 3 (little-endian)",
        got: String(version),
      },
    );
  }
  const nTensors = c.count("tensor count", MIN_TENSOR_INFO_BYTES);
  const nKv = c.count("metadata count", MIN_KV_BYTES);
  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata key #${i}`);
    const t = typeOf(c.u32(`${key} (type)`), c, key);
    if (metadata.has(key))
      throw new SteerlabError("bad_file", `duplicate GGUF key ${key}`, { file, field: key });
    metadata.set(key, readValue(c, t, key, 0));
  }
  let alignment = 32;
  const al = metadata.get("general.alignment");
  if (al) {
    const a = al.value;
    if (al.type !== "u32" || typeof a !== "number" || a === 0 || (a & (a - 1)) !== 0) {
      throw new SteerlabError("bad_file", "general.alignment must be a power-of-two u32", {
        file,
        field: "general.alignment",
        got: JSON.stringify(String(a)),
      });
    }
    alignment = a;
  }
  const infos: { name: string; ne: number[]; type: number; rel: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`tensor #${i} name`);
    const nd = c.u32(`${name} n_dims`);
    if (nd < 1 || nd > MAX_DIMS) {
      throw new SteerlabError("bad_file", `tensor ${name} has ${nd} dimensions`, {
        file,
        field: `${name}.n_dims`,
        expected: `1..${MAX_DIMS}`,
        got: String(nd),
      });
    }
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) {
      const v = c.u64big(`${name} ne[${d}]`);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new SteerlabError("bad_file", `tensor ${name} dimension too large`, {
          file,
          field: `${name}.ne[${d}]`,
          got: v.toString(),
        });
      }
      ne.push(Number(v));
    }
    const type = c.u32(`${name} type`);
    const rel = c.u64big(`${name} offset`);
    if (rel > BigInt(src.size)) {
      throw new SteerlabError("bad_file", `tensor ${name} data offset is past the end of the file`, {
        file,
        field: `${name}.offset`,
        got: rel.toString(),
      });
    }
    infos.push({ name, ne, type, rel: Number(rel) });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const { name, ne, type, rel } of infos) {
    if (seen.has(name)) problems.push(`tensor ${name}: duplicate name`);
    seen.add(name);
    const n = numel(ne);
    const info = ggmlTypeInfo(type);
    const byteSize = ggmlByteSize(type, n);
    if (!info) problems.push(`tensor ${name}: unsupported ggml type ${type} (${ggmlTypeName(type)})`);
    else if (byteSize === undefined || ne[0]! % info.block !== 0) {
      problems.push(
        `tensor ${name}: row length ${ne[0]} is not a multiple of the ${info.name} block size ${info.block}`,
      );
    } else if (rel % alignment !== 0) {
      problems.push(`tensor ${name}: offset ${rel} is not a multiple of the alignment ${alignment}`);
    } else if (dataStart + rel + byteSize > src.size) {
      problems.push(
        `tensor ${name}: data (${byteSize} bytes at ${dataStart + rel}) runs past the end of the file (${src.size} bytes)`,
      );
    } else {
      tensors.push({ name, shape: [...ne].reverse(), type, offset: dataStart + rel, byteSize });
    }
  }
  if (problems.length) {
    const unsupportedOnly = problems.every((p) => p.includes("unsupported ggml type"));
    throw new SteerlabError(
      unsupportedOnly ? "unsupported" : "bad_file",
      `invalid GGUF tensor table: ${problems[0]}`,
      {
        file,
        field: "tensor_info",
        problems,
      },
    );
  }
  return { file, version, metadata, tensors, alignment, dataStart };
}

/** Decode one tensor to f32 (row-major shape). */
export function readGgufTensor(src: ByteSource, info: GgufTensorInfo): Tensor {
  const bytes = src.read(info.offset, info.byteSize, `tensor ${info.name}`);
  return tensor(info.shape, dequantize(info.type, bytes, numel(info.shape)));
}

export interface GgufContents {
  header: GgufHeader;
  tensors: Map<string, Tensor>;
}

function readAll(src: ByteSource): GgufContents {
  const header = readGgufHeader(src);
  const tensors = new Map<string, Tensor>();
  for (const info of header.tensors) tensors.set(info.name, readGgufTensor(src, info));
  return { header, tensors };
}

export function readGguf(path: string): GgufContents {
  return withFile(path, readAll);
}

/** Parse an in-memory GGUF image (tests, fuzzing). */
export function parseGguf(buf: Uint8Array, file = "<buffer>"): GgufContents {
  return readAll(bufferSource(buf, file));
}

// ---------- writing ----------

export interface GgufTensorOut {
  name: string;
  /** Row-major shape. */
  shape: readonly number[];
  /** ggml_type id of `data`. */
  type: number;
  /** Encoded bytes (see gguf-quant.ts quantize), or a function making them when the writer reaches this tensor. */
  data: Uint8Array | (() => Uint8Array);
}

class Writer {
  private chunks: Uint8Array[] = [];
  size = 0;
  bytes(b: Uint8Array) {
    this.chunks.push(b);
    this.size += b.length;
  }
  private num(n: number, f: (dv: DataView) => void) {
    const b = new Uint8Array(n);
    f(new DataView(b.buffer));
    this.bytes(b);
  }
  u32(v: number) {
    this.num(4, (d) => d.setUint32(0, v, true));
  }
  u64(v: number | bigint) {
    this.num(8, (d) => d.setBigUint64(0, BigInt(v), true));
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  scalar(t: GgufType, v: GgufScalar) {
    switch (t) {
      case "u8":
        return this.num(1, (d) => d.setUint8(0, Number(v)));
      case "i8":
        return this.num(1, (d) => d.setInt8(0, Number(v)));
      case "u16":
        return this.num(2, (d) => d.setUint16(0, Number(v), true));
      case "i16":
        return this.num(2, (d) => d.setInt16(0, Number(v), true));
      case "u32":
        return this.u32(Number(v));
      case "i32":
        return this.num(4, (d) => d.setInt32(0, Number(v), true));
      case "f32":
        return this.num(4, (d) => d.setFloat32(0, Number(v), true));
      case "bool":
        return this.num(1, (d) => d.setUint8(0, v ? 1 : 0));
      case "str":
        return this.str(String(v));
      case "u64":
        return this.u64(BigInt(v as number | bigint));
      case "i64":
        return this.num(8, (d) => d.setBigInt64(0, BigInt(v as number | bigint), true));
      case "f64":
        return this.num(8, (d) => d.setFloat64(0, Number(v), true));
    }
  }
  value(v: GgufValue) {
    if (v.type !== "array") return this.scalar(v.type, v.value);
    this.u32(GGUF_TYPES.indexOf(v.itemType));
    this.u64(v.value.length);
    if (v.itemType === "array") for (const x of v.value as GgufValue[]) this.value(x);
    else for (const x of v.value as GgufScalar[]) this.scalar(v.itemType, x);
  }
  pad(alignment: number) {
    const p = (alignment - (this.size % alignment)) % alignment;
    if (p) this.bytes(new Uint8Array(p));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.size);
    let p = 0;
    for (const c of this.chunks) {
      out.set(c, p);
      p += c.length;
    }
    return out;
  }
}

type MetaIn = GgufMetadata | Record<string, GgufValue>;

/**
 * Everything before the tensor data: header, metadata, tensor infos (offsets from the byte sizes the shapes and
 * types imply) and padding. Metadata keeps its order; general.alignment (if given) sets the alignment.
 */
function ggufHead(
  metadata: MetaIn,
  tensors: readonly GgufTensorOut[],
): { head: Uint8Array; alignment: number } {
  const meta = metadata instanceof Map ? metadata : new Map(Object.entries(metadata));
  const al = meta.get("general.alignment");
  const alignment = al && typeof al.value === "number" ? al.value : 32;
  const w = new Writer();
  w.u32(MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(meta.size);
  for (const [k, v] of meta) {
    w.str(k);
    w.u32(GGUF_TYPES.indexOf(v.type));
    w.value(v);
  }
  let offset = 0;
  for (const t of tensors) {
    const size = ggmlByteSize(t.type, numel(t.shape));
    if (size === undefined) {
      throw new SteerlabError(
        "bad_input",
        `tensor ${t.name}: shape does not fit ${ggmlTypeName(t.type)} blocks`,
        {
          field: t.name,
          got: fmtShape(t.shape),
        },
      );
    }
    w.str(t.name);
    w.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(size / alignment) * alignment;
  }
  w.pad(alignment);
  return { head: w.concat(), alignment };
}

/** A tensor's encoded bytes followed by padding to the alignment, checked against its shape and type. */
function ggufTensorBytes(t: GgufTensorOut, alignment: number): Uint8Array[] {
  const data = typeof t.data === "function" ? t.data() : t.data;
  const want = ggmlByteSize(t.type, numel(t.shape));
  if (want !== data.length) {
    throw new SteerlabError("bad_input", `tensor ${t.name}: data does not match its shape and type`, {
      field: t.name,
      expected: `${want} bytes for ${fmtShape(t.shape)} ${ggmlTypeName(t.type)}`,
      got: `${data.length} bytes`,
    });
  }
  const pad = (alignment - (data.length % alignment)) % alignment;
  return pad ? [data, new Uint8Array(pad)] : [data];
}

/** Encode a GGUF v3 image in memory. */
export function encodeGguf(metadata: MetaIn, tensors: GgufTensorOut[]): Uint8Array {
  const { head, alignment } = ggufHead(metadata, tensors);
  const w = new Writer();
  w.bytes(head);
  for (const t of tensors) for (const b of ggufTensorBytes(t, alignment)) w.bytes(b);
  return w.concat();
}

/** Write a GGUF v3 file, encoding and writing one tensor at a time (no whole-file buffer). */
export function writeGguf(path: string, metadata: MetaIn, tensors: GgufTensorOut[]): void {
  const { head, alignment } = ggufHead(metadata, tensors);
  writeFileAtomicWith(path, (put) => {
    put(head);
    for (const t of tensors) for (const b of ggufTensorBytes(t, alignment)) put(b);
  });
}

// ---------- typed access for loaders ----------

/** A numeric metadata value, or undefined when absent; a SteerlabError when present with another type. */
export function metaNumber(meta: GgufMetadata, key: string, file: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type === "array" || v.type === "str" || v.type === "bool" || !Number.isFinite(Number(v.value))) {
    throw new SteerlabError("bad_config", `GGUF key ${key} is not a number`, {
      file,
      field: key,
      expected: "a number",
      got: v.type,
    });
  }
  return Number(v.value);
}

export function metaString(meta: GgufMetadata, key: string, file: string): string | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (v.type !== "str") {
    throw new SteerlabError("bad_config", `GGUF key ${key} is not a string`, {
      file,
      field: key,
      expected: "str",
      got: v.type,
    });
  }
  return v.value as string;
}
