/**
 * steerlab's vector file: a safetensors file, self-describing through its `__metadata__`.
 *
 *   tensors      direction.<l>  f32 [D], one per layer; l is a 0-based block index (see below)
 *   __metadata__ (string -> string, as safetensors requires)
 *     format            "steerlab.vector"
 *     format_version    "1"
 *     steerlab          JSON: { site, layer_base, layers, hidden_size, model {arch, hidden_size, n_layers,
 *                       fingerprint}, model_hint, method, read_position, dataset {hash, size}, scale,
 *                       sign_convention, created_by, norms {l: ||direction.l||}, diagnostics {l: {...}},
 *                       method_info {l: {...}} | null, suggested_layers }
 *
 * layer_base "block0": direction.l belongs to block l counted from 0; at site resid_post it is added to the
 * output of block l = HF hidden_states[l + 1] = llama.cpp l_out-l (DESIGN.md section 2).
 */
import { z } from "zod";
import { SteerlabError } from "../errors.js";
import type { FiniteOptions } from "../io/finite.js";
import { encodeSafetensors, parseSafetensors, readSafetensors, writeSafetensors } from "../io/safetensors.js";
import { isSite } from "../model/hooks.js";
import { tensor } from "../tensor.js";
import type { LayerDiagnostics } from "./diagnostics.js";
import { makeVector, type SteeringVector } from "./vector.js";

export const VECTOR_FORMAT = "steerlab.vector";
export const VECTOR_FORMAT_VERSION = 1;
const LAYER_BASE = "block0";

type Json = Record<string, unknown>;

function norm(v: Float32Array): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

/** NaN/Inf are not JSON: store them as null (a streaming fit has no held-out accuracy, for instance). */
function finiteOrNull(x: number | null): number | null {
  return x === null || !Number.isFinite(x) ? null : x;
}

function metadataOf(v: SteeringVector): Record<string, string> {
  const layers = [...v.directions.keys()].sort((a, b) => a - b);
  const diag: Json = {};
  for (const [l, d] of v.diagnostics) {
    const o: Json = {};
    for (const [k, x] of Object.entries(d)) o[k] = typeof x === "number" ? finiteOrNull(x) : x;
    diag[String(l)] = o;
  }
  const body = {
    site: v.site,
    layer_base: LAYER_BASE,
    layers,
    hidden_size: v.hiddenSize,
    model: v.model && {
      arch: v.model.arch,
      hidden_size: v.model.hiddenSize,
      n_layers: v.model.nLayers,
      fingerprint: v.model.fingerprint,
    },
    model_hint: v.modelHint,
    method: v.method,
    read_position: v.readPosition,
    dataset: v.dataset,
    scale: v.scale,
    sign_convention: v.signConvention,
    created_by: v.createdBy,
    norms: Object.fromEntries(layers.map((l) => [String(l), norm(v.directions.get(l)!)])),
    diagnostics: diag,
    method_info: v.methodInfo ? Object.fromEntries([...v.methodInfo].map(([l, i]) => [String(l), i])) : null,
    suggested_layers: v.suggestedLayers,
  };
  return {
    format: VECTOR_FORMAT,
    format_version: String(VECTOR_FORMAT_VERSION),
    steerlab: JSON.stringify(body),
  };
}

function tensorsOf(v: SteeringVector): [string, ReturnType<typeof tensor>][] {
  return [...v.directions.keys()]
    .sort((a, b) => a - b)
    .map((l) => [`direction.${l}`, tensor([v.hiddenSize], v.directions.get(l)!)]);
}

export function encodeVector(v: SteeringVector): Uint8Array {
  return encodeSafetensors(tensorsOf(v), { metadata: metadataOf(v) });
}

export function writeVector(path: string, v: SteeringVector): void {
  writeSafetensors(path, tensorsOf(v), { metadata: metadataOf(v) });
}

export function readVector(path: string, opts: FiniteOptions = {}): SteeringVector {
  const c = readSafetensors(path);
  return fromContents(c.metadata, c.tensors, path, opts);
}

export function decodeVector(buf: Uint8Array, file = "<buffer>", opts: FiniteOptions = {}): SteeringVector {
  const c = parseSafetensors(buf, file);
  return fromContents(c.metadata, c.tensors, file, opts);
}

const nullableString = z.string().nullable().optional();
/** The `steerlab` metadata JSON: shapes checked here so that no field access meets null or a prototype key. */
const MetaBody = z.object({
  site: z.string(),
  layer_base: z.string(),
  layers: z.array(z.number().int().nonnegative()),
  hidden_size: z.number().int().positive(),
  model: z
    .object({
      arch: z.string(),
      hidden_size: z.number().int().positive(),
      n_layers: z.number().int().positive(),
      fingerprint: nullableString,
    })
    .nullable()
    .optional(),
  model_hint: nullableString,
  method: nullableString,
  read_position: nullableString,
  dataset: z.object({ hash: z.string(), size: z.number().int().nonnegative() }).nullable().optional(),
  diagnostics: z.record(z.string().regex(/^\d+$/), z.record(z.string(), z.unknown())).nullable().optional(),
  method_info: z
    .record(z.string().regex(/^\d+$/), z.record(z.string(), z.union([z.number(), z.boolean(), z.string()])))
    .nullable()
    .optional(),
  suggested_layers: z.array(z.number().int().nonnegative()).nullable().optional(),
  scale: nullableString,
  sign_convention: nullableString,
  created_by: nullableString,
});

function fromContents(
  meta: Record<string, string>,
  tensors: Map<string, { shape: readonly number[]; data: Float32Array }>,
  file: string,
  opts: FiniteOptions,
): SteeringVector {
  const bad = (msg: string, field: string, expected?: string, got?: string) =>
    new SteerlabError("bad_file", msg, { file, field, expected, got });
  if (meta.format !== VECTOR_FORMAT) {
    throw new SteerlabError("bad_file", "not a steerlab vector file", {
      file,
      field: "__metadata__.format",
      expected: VECTOR_FORMAT,
      got: meta.format ?? "(absent)",
      hint: "GGUF control vectors are read with readControlVector; plain safetensors need a format key",
    });
  }
  if (Number(meta.format_version) !== VECTOR_FORMAT_VERSION) {
    throw bad(
      "unsupported vector file version",
      "__metadata__.format_version",
      String(VECTOR_FORMAT_VERSION),
      meta.format_version,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(meta.steerlab ?? "");
  } catch {
    throw bad("vector metadata is not valid JSON", "__metadata__.steerlab");
  }
  const parsed = MetaBody.safeParse(raw);
  if (!parsed.success) {
    throw new SteerlabError("bad_file", "vector metadata has missing or invalid fields", {
      file,
      field: "__metadata__.steerlab",
      problems: parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`),
    });
  }
  const b = parsed.data;
  const site = b.site;
  if (!isSite(site)) throw bad("unknown site", "site", "resid_pre | attn_out | mlp_out | resid_post", site);
  if (b.layer_base !== LAYER_BASE)
    throw bad("unknown layer index base", "layer_base", LAYER_BASE, String(b.layer_base));
  const D = b.hidden_size;
  if (typeof D !== "number" || !Number.isInteger(D) || D <= 0)
    throw bad("bad hidden size", "hidden_size", "a positive integer", String(D));
  const problems: string[] = [];
  const directions = new Map<number, Float32Array>();
  for (const [name, t] of tensors) {
    const m = /^direction\.(\d+)$/.exec(name);
    if (!m) {
      problems.push(`unexpected tensor "${name}" (expected direction.<layer>)`);
      continue;
    }
    if (t.shape.length !== 1 || t.shape[0] !== D) {
      problems.push(`${name}: shape [${t.shape.join(", ")}], expected [${D}]`);
      continue;
    }
    directions.set(Number(m[1]), Float32Array.from(t.data));
  }
  const listed = b.layers;
  const have = [...directions.keys()].sort((x, y) => x - y);
  if (listed.join(",") !== have.join(","))
    problems.push(`metadata lists layers [${listed}] but the file holds [${have}]`);
  if (problems.length || directions.size === 0) {
    throw new SteerlabError("bad_file", "bad vector file", {
      file,
      problems: problems.length ? problems : ["no direction tensors"],
    });
  }
  const model = b.model ?? null;
  const diagnostics = new Map<number, LayerDiagnostics>();
  for (const [l, d] of Object.entries(b.diagnostics ?? {})) {
    const o = { ...d };
    for (const [k, x] of Object.entries(o)) if (x === null && k !== "heldOutAccuracy") o[k] = Number.NaN;
    diagnostics.set(Number(l), o as unknown as LayerDiagnostics);
  }
  return makeVector(
    directions,
    {
      site,
      model: model
        ? {
            arch: String(model.arch),
            hiddenSize: Number(model.hidden_size),
            nLayers: Number(model.n_layers),
            fingerprint: model.fingerprint ?? null,
          }
        : null,
      modelHint: b.model_hint ?? null,
      method: b.method ?? "unknown",
      readPosition: b.read_position ?? null,
      dataset: b.dataset ?? null,
      diagnostics,
      ...(b.method_info
        ? { methodInfo: new Map(Object.entries(b.method_info).map(([l, i]) => [Number(l), i])) }
        : {}),
      suggestedLayers: b.suggested_layers ?? [],
      scale: b.scale === "unit" ? "unit" : "raw",
      signConvention: b.sign_convention ?? "",
      createdBy: b.created_by ?? "",
    },
    { ...opts, file },
  );
}
