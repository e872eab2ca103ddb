/**
 * A thin ONNX graph builder: it only names things and keeps the books. Nodes get hierarchical names
 * (`/blocks.3/attn/q_proj/MatMul`), their outputs are named after the node (`.../MatMul/out`), initializers and
 * graph inputs/outputs are registered once, and any duplicate name throws. The math lives in small pure functions
 * (norm.ts, linear.ts, attention.ts, mlp.ts) that take value names and return value names.
 */

import type { onnx as P } from "onnx-proto";
import onnxProto from "onnx-proto";
import { SteerlabError } from "../../errors.js";

const { onnx } = onnxProto;

/** The name of a tensor value inside a graph. */
export type Value = string;

export type ElemType = "float32" | "int64";
const ELEM: Record<ElemType, number> = { float32: 1, int64: 7 };

/** A dimension: a fixed size or a symbolic name ("batch", "seq"). */
export type Dim = number | string;

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };
export type Attrs = Record<string, AttrValue>;

interface Books {
  nodes: P.INodeProto[];
  inits: P.ITensorProto[];
  inputs: P.IValueInfoProto[];
  outputs: P.IValueInfoProto[];
  names: Set<string>;
  /** The weights (not the small constants) as raw bytes, for external-data encoding. */
  weights: { name: string; data: Uint8Array }[];
  /** Bytes of initializer data registered so far. */
  initBytes: number;
}

export interface GraphSettings {
  /**
   * MatMulNBits accuracy_level for quantized weights: 0 computes in f32 (exact: the dequantized model), 4 with
   * int8-quantized activations (llama.cpp's approach for quantized matmuls; the fast path). See nbits.ts.
   */
  quantAccuracy: 0 | 4;
}

const DEFAULT_SETTINGS: GraphSettings = { quantAccuracy: 4 };

/** Opset of the default domain. 20 gives Gelu(approximate="tanh"); com.microsoft ops are version 1. */
export const OPSET = 20;

export class GraphBuilder {
  private constructor(
    private readonly books: Books,
    /** Scope path prefix for node names, e.g. "/blocks.3/attn". */
    readonly path: string,
    /** Build settings every layer function of this graph reads. */
    readonly settings: GraphSettings,
  ) {}

  static create(settings: Partial<GraphSettings> = {}): GraphBuilder {
    return new GraphBuilder(
      { nodes: [], inits: [], inputs: [], outputs: [], names: new Set(), weights: [], initBytes: 0 },
      "",
      { ...DEFAULT_SETTINGS, ...settings },
    );
  }

  /** A view that prefixes node names with one more path segment; shares the books with its parent. */
  scope(segment: string): GraphBuilder {
    return new GraphBuilder(this.books, `${this.path}/${segment}`, this.settings);
  }

  private claim(name: string, what: string): string {
    if (this.books.names.has(name)) {
      throw new SteerlabError("bad_input", `duplicate ${what} name in ONNX graph: ${name}`, {
        field: name,
        hint: "give each node a distinct scope or local name",
      });
    }
    this.books.names.add(name);
    return name;
  }

  input(name: string, type: ElemType, dims: readonly Dim[]): Value {
    this.books.inputs.push(valueInfo(this.claim(name, "input"), type, dims));
    return name;
  }

  /** Declare `value` as a graph output under `name` (an Identity node renames it when the names differ). */
  output(value: Value, name: string, type: ElemType, dims: readonly Dim[]): Value {
    if (value !== name) this.rename(value, name);
    this.books.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /**
   * Give a node's output the graph-output name: rename it where produced and where consumed (an Identity would
   * copy the tensor on every run). Graph inputs and initializers get an Identity instead.
   */
  private rename(value: Value, name: string): void {
    const producer = this.books.nodes.find((n) => n.output?.includes(value));
    if (!producer) {
      if (!this.books.names.has(value)) {
        throw new SteerlabError("bad_input", `graph output of unknown value ${value}`, { field: name });
      }
      this.op("Identity", [value], {}, name, name);
      return;
    }
    this.claim(name, "value");
    this.books.names.delete(value);
    producer.output = producer.output!.map((o) => (o === value ? name : o));
    for (const n of this.books.nodes) n.input = n.input!.map((i) => (i === value ? name : i));
  }

  /** A float32 weight. `data` goes into the model bytes, or beside them as external data (see encode). */
  weight(name: string, dims: readonly number[], data: Float32Array): Value {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new SteerlabError("bad_tensor", `initializer ${name} has ${data.length} values`, {
        field: name,
        expected: `${n} values for shape [${dims.join(", ")}]`,
        got: String(data.length),
      });
    }
    return this.raw(name, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 1);
  }

  /** A uint8 weight (quantized codes, zero points): like weight, one byte per element. */
  bytes(name: string, dims: readonly number[], data: Uint8Array): Value {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new SteerlabError("bad_tensor", `initializer ${name} has ${data.length} bytes`, {
        field: name,
        expected: `${n} bytes for shape [${dims.join(", ")}]`,
        got: String(data.length),
      });
    }
    return this.raw(name, dims, data, 2);
  }

  private raw(name: string, dims: readonly number[], raw: Uint8Array, dataType: number): Value {
    this.books.inits.push({ name: this.claim(name, "initializer"), dims: [...dims], dataType, rawData: raw });
    this.books.weights.push({ name, data: raw });
    this.books.initBytes += raw.byteLength;
    return name;
  }

  /** A small int64 constant (shapes, axes, slice bounds), named under the current scope. */
  ints(localName: string, values: readonly number[]): Value {
    const name = this.claim(`${this.path}/${localName}`, "constant");
    const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    this.books.inits.push({ name, dims: [values.length], dataType: 7, rawData: raw });
    return name;
  }

  /** A float32 scalar constant, named under the current scope. */
  scalar(localName: string, value: number): Value {
    const name = this.claim(`${this.path}/${localName}`, "constant");
    const raw = new Uint8Array(new Float32Array([value]).buffer);
    this.books.inits.push({ name, dims: [], dataType: 1, rawData: raw });
    return name;
  }

  /**
   * Add one node named `${path}/${local ?? op}`; returns its single output value. `outName` overrides the output
   * name (used for graph outputs).
   */
  op(op: string, inputs: readonly Value[], attrs: Attrs = {}, local?: string, outName?: string): Value {
    return this.opN(op, inputs, 1, attrs, local, outName ? [outName] : undefined)[0]!;
  }

  /** Like op, for nodes with several outputs. */
  opN(
    op: string,
    inputs: readonly Value[],
    nOut: number,
    attrs: Attrs = {},
    local?: string,
    outNames?: readonly string[],
    domain = "",
  ): Value[] {
    const name = this.claim(`${this.path}/${local ?? op}`, "node");
    const outs = Array.from({ length: nOut }, (_, i) =>
      this.claim(outNames?.[i] ?? (nOut === 1 ? `${name}/out` : `${name}/out${i}`), "value"),
    );
    this.books.nodes.push({
      name,
      opType: op,
      domain,
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** A com.microsoft contrib op with one output. */
  msOp(op: string, inputs: readonly Value[], attrs: Attrs = {}, local?: string): Value {
    return this.opN(op, inputs, 1, attrs, local, undefined, "com.microsoft")[0]!;
  }

  get initializerBytes(): number {
    return this.books.initBytes;
  }

  get nodeNames(): string[] {
    return this.books.nodes.map((n) => n.name!);
  }

  /**
   * Serialize to ModelProto bytes for InferenceSession.create.
   * external: the weights are not copied into the bytes; each initializer points at an in-memory "file" (its
   * name), and `files` lists them for SessionOptions.externalData.
   */
  encode(graphName: string, opts: { external?: boolean } = {}): EncodedGraph {
    const b = this.books;
    const big = new Set(opts.external ? b.weights.map((w) => w.name) : []);
    const inits = b.inits.map((t) =>
      big.has(t.name!)
        ? {
            name: t.name,
            dims: t.dims,
            dataType: t.dataType,
            dataLocation: 1, // EXTERNAL
            externalData: [
              { key: "location", value: t.name },
              { key: "offset", value: "0" },
              { key: "length", value: String(t.rawData!.byteLength) },
            ],
          }
        : t,
    );
    const model = onnx.ModelProto.create({
      irVersion: 9,
      producerName: "steerlab",
      opsetImport: [
        { domain: "", version: OPSET },
        { domain: "com.microsoft", version: 1 },
      ],
      graph: { name: graphName, node: b.nodes, initializer: inits, input: b.inputs, output: b.outputs },
    });
    const files = opts.external ? b.weights.map((w) => ({ path: w.name, data: w.data })) : [];
    return { bytes: onnx.ModelProto.encode(model).finish(), files };
  }
}

export interface EncodedGraph {
  bytes: Uint8Array;
  /** External weight "files" (name → data) for SessionOptions.externalData; empty unless encoded external. */
  files: { path: string; data: Uint8Array }[];
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): P.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Integers become INT/INTS; `{float}` / `{floats}` mark float attributes; strings become STRING. */
function attribute(name: string, v: AttrValue): P.IAttributeProto {
  if (typeof v === "number") return { name, type: 2, i: v };
  if (typeof v === "string") return { name, type: 3, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: 7, ints: v };
  if ("float" in v) return { name, type: 1, f: v.float };
  return { name, type: 6, floats: v.floats };
}
