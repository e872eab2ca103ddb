/**
 * GGUF control vectors as llama.cpp loads them and repeng writes them, mapped exactly onto steerlab's layers.
 *
 * The format: general.architecture = "controlvector", controlvector.model_hint (str),
 * controlvector.layer_count (u32), and one f32 1-D tensor `direction.N` of length n_embd per steered layer.
 *
 * The mapping, read from the sources:
 *  - llama.cpp, common/common.cpp (common_control_vector_load_one): N must parse as an integer > 0; a file
 *    with direction.0 (or any bad name, non-F32 or non-1-D tensor) is rejected whole. The data goes to a flat
 *    buffer at offset n_embd * (N - 1): "layer 1 at [0]", scaled by the user's strength; several files add.
 *  - llama.cpp, src/llama-adapter.cpp: the buffer fills tensors[il] for il = 1..n_layer-1; tensors[0] is
 *    never allocated ("there's never a tensor for layer 0"); apply_to(cur, il) adds tensors[il] when
 *    layer_start <= il <= layer_end (--control-vector-layer-range, inclusive).
 *  - llama.cpp model graphs: at the end of block il, after the FFN residual add, `cur = build_cvec(cur, il)`
 *    then `cb(cur, "l_out", il)`: the vector is added to the OUTPUT of block il (0-based), before block il+1.
 *  - repeng (extract.py): layer indices are 0-based positions in model.layers (negatives resolved with
 *    n_layers + i); it reads hidden_states[layer + 1] (the output of that block) and export_gguf writes
 *    direction.{layer} unchanged, layer_count = the number of directions. Its default layers are -1..-(n-1),
 *    i.e. blocks n-1..1, so it never writes block 0.
 * Hence direction.N  <=>  steerlab layer N (0-based block) at site resid_post, with no offset; steerlab's
 * resid_pre[l] = resid_post[l - 1] exports as direction.(l - 1); block 0's output (and resid_pre[0], the
 * embeddings) cannot be expressed for llama.cpp and is refused rather than dropped silently.
 */
import { SteerlabError } from "../errors.js";
import { encodeGguf, type GgufMetadata, gv, metaString, parseGguf, readGguf } from "../io/gguf.js";
import { GGML_TYPE } from "../io/gguf-quant.js";
import { writeFileAtomic } from "../io/write-atomic.js";
import type { ModelConfig } from "../model/config.js";
import { identity, makeVector, type SteeringVector } from "./vector.js";

export const CONTROL_VECTOR_ARCH = "controlvector";

export interface ControlVectorExportOptions {
  /** Multiply every direction by this before writing (llama.cpp's strength then multiplies again). Default 1. */
  coeff?: number;
  /** Drop a direction for block 0 instead of refusing (llama.cpp rejects files that contain direction.0). */
  dropLayer0?: boolean;
  /** controlvector.model_hint; default the vector's hint, else its model architecture. */
  modelHint?: string;
}

/** steerlab (site, 0-based layer) -> llama.cpp direction index N. */
export function controlVectorIndex(site: string, layer: number): number {
  if (site === "resid_post") return layer;
  if (site === "resid_pre") return layer - 1;
  throw new SteerlabError("unsupported", `llama.cpp control vectors act on block outputs, not on ${site}`, {
    field: "site",
    expected: "resid_post (or resid_pre, shifted by one)",
    got: site,
  });
}

function exportParts(v: SteeringVector, opts: ControlVectorExportOptions) {
  const coeff = opts.coeff ?? 1;
  const tensors: { name: string; shape: number[]; type: number; data: Uint8Array }[] = [];
  const layers = [...v.directions.keys()].sort((a, b) => a - b);
  for (const l of layers) {
    const n = controlVectorIndex(v.site, l);
    if (n <= 0) {
      if (opts.dropLayer0) continue;
      throw new SteerlabError(
        "unsupported",
        `llama.cpp cannot steer ${v.site}[${l}] (it never steers block 0)`,
        {
          field: `direction for layer ${l}`,
          hint: "select other layers, or pass dropLayer0 to leave it out",
        },
      );
    }
    const d = Float32Array.from(v.directions.get(l)!, (x) => x * coeff);
    tensors.push({
      name: `direction.${n}`,
      shape: [v.hiddenSize],
      type: GGML_TYPE.F32,
      data: new Uint8Array(d.buffer),
    });
  }
  if (tensors.length === 0) throw new SteerlabError("bad_input", "no layers left to export");
  const meta: GgufMetadata = new Map([
    ["general.architecture", gv.str(CONTROL_VECTOR_ARCH)],
    [
      `${CONTROL_VECTOR_ARCH}.model_hint`,
      gv.str(opts.modelHint ?? v.modelHint ?? v.model?.arch ?? "unknown"),
    ],
    [`${CONTROL_VECTOR_ARCH}.layer_count`, gv.u32(tensors.length)],
  ]);
  return { meta, tensors };
}

export function encodeControlVector(v: SteeringVector, opts: ControlVectorExportOptions = {}): Uint8Array {
  const { meta, tensors } = exportParts(v, opts);
  return encodeGguf(meta, tensors);
}

export function writeControlVector(
  path: string,
  v: SteeringVector,
  opts: ControlVectorExportOptions = {},
): void {
  writeFileAtomic(path, encodeControlVector(v, opts));
}

export interface ControlVectorImportOptions {
  /** The model it will be used with: recorded as the vector's model identity. */
  model?: ModelConfig;
  fingerprint?: string;
  /** Let NaN/Inf directions through (debugging). */
  allowNonFinite?: boolean;
}

export function readControlVector(path: string, opts: ControlVectorImportOptions = {}): SteeringVector {
  const c = readGguf(path);
  return fromGguf(c.header.metadata, c.header.tensors, c.tensors, path, opts);
}

export function decodeControlVector(
  buf: Uint8Array,
  file = "<buffer>",
  opts: ControlVectorImportOptions = {},
): SteeringVector {
  const c = parseGguf(buf, file);
  return fromGguf(c.header.metadata, c.header.tensors, c.tensors, file, opts);
}

function fromGguf(
  meta: GgufMetadata,
  infos: readonly { name: string; type: number; shape: number[] }[],
  tensors: Map<string, { shape: readonly number[]; data: Float32Array }>,
  file: string,
  opts: ControlVectorImportOptions,
): SteeringVector {
  const arch = metaString(meta, "general.architecture", file);
  if (arch !== CONTROL_VECTOR_ARCH) {
    throw new SteerlabError("bad_file", "not a control vector", {
      file,
      field: "general.architecture",
      expected: CONTROL_VECTOR_ARCH,
      got: arch ?? "(absent)",
    });
  }
  const hint = metaString(meta, `${CONTROL_VECTOR_ARCH}.model_hint`, file) ?? null;
  const problems: string[] = [];
  const directions = new Map<number, Float32Array>();
  let dim = -1;
  for (const info of infos) {
    const m = /^direction\.(\d+)$/.exec(info.name);
    if (!m) {
      problems.push(`tensor "${info.name}": expected direction.<N>`);
      continue;
    }
    const n = Number(m[1]);
    if (n === 0) problems.push("direction.0: llama.cpp never steers block 0 and rejects such files");
    if (info.type !== GGML_TYPE.F32) problems.push(`${info.name}: type ${info.type}, llama.cpp needs F32`);
    if (info.shape.length !== 1) problems.push(`${info.name}: ${info.shape.length}-D, llama.cpp needs 1-D`);
    const len = info.shape[0] ?? 0;
    if (dim === -1) dim = len;
    else if (len !== dim) problems.push(`${info.name}: length ${len}, other directions have ${dim}`);
    if (n > 0) directions.set(n, Float32Array.from(tensors.get(info.name)!.data));
  }
  if (opts.model && dim !== -1 && dim !== opts.model.hiddenSize) {
    problems.push(`n_embd ${dim} does not match the model's hidden size ${opts.model.hiddenSize}`);
  }
  if (problems.length || directions.size === 0) {
    throw new SteerlabError("bad_file", "bad control vector", {
      file,
      problems: problems.length ? problems : ["no direction tensors"],
    });
  }
  return makeVector(
    directions,
    {
      site: "resid_post",
      modelHint: hint,
      model: opts.model ? identity(opts.model, opts.fingerprint ?? null) : null,
      method: "gguf-control-vector",
      scale: "raw",
    },
    { file, allowNonFinite: opts.allowNonFinite },
  );
}
