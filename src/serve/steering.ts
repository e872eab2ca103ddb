/**
 * A request's steering, whichever way it was written (EasySteer's `steering`, llama.cpp-style `control_vectors`,
 * vLLM's `vllm_xargs.steer`), resolved once into a plan: vectors (from the library or inline), coefficient,
 * layers, operator and positions. The plan becomes the hooks of that request's row only (built as for a batch
 * of one; the batcher scopes them to the row), and is echoed back in the response as it was applied.
 */
import type { z } from "zod";
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { ModelConfig } from "../model/config.js";
import type { HookBinding } from "../model/engine.js";
import { resolveLayer } from "../model/hooks.js";
import { parsePositions, type SteerEntry, type SteerOp, steeringHooks } from "../steer/apply.js";
import { controlVectorIndex } from "../steer/control-vector-gguf.js";
import { markerIndex, type PreparedPrompt } from "../steer/steer-call.js";
import { makeVector, type SteeringVector } from "../steer/vector.js";
import { specificIssue } from "./api-error.js";
import type { controlVectorSchema, SteeringObject, vllmXargsSchema } from "./schemas.js";
import { steeringSchema } from "./schemas.js";
import type { VectorLibrary } from "./vector-library.js";

export interface PlannedVector {
  /** Library name, or "inline[i]". */
  name: string;
  vector: SteeringVector;
  scale: number;
  layers: number[];
  op: SteerOp;
  /** Where the request gave it ("steering.vectors[0]", "control_vectors[1]"), for errors found later. */
  field: string;
}

export interface SteeringPlan {
  source: "request" | "default";
  vectors: PlannedVector[];
  positions: string;
  marker?: string;
  normGuard: boolean;
}

/** What the response says was applied (null: no steering). */
export interface SteeringEcho {
  source: "request" | "default";
  positions: string;
  marker?: string;
  norm_guard: boolean;
  vectors: { name: string; scale: number; layers: number[]; operator: SteerOp; kind: "unit" | "raw" }[];
}

export interface SteeringFields {
  steering?: false | SteeringObject;
  control_vectors?: z.infer<typeof controlVectorSchema>[];
  vllm_xargs?: z.infer<typeof vllmXargsSchema>;
}

function bad(message: string, field: string, hint?: string): SteerlabError {
  return new SteerlabError("bad_input", message, { field, ...(hint ? { hint } : {}) });
}

function resolveLayers(layers: readonly number[], nLayers: number, field: string): number[] {
  try {
    return [...new Set(layers.map((l) => resolveLayer(l, nLayers)))].sort((a, b) => a - b);
  } catch (e) {
    throw inField(e, field);
  }
}

/** Library lookups report the request field they came from; a vector must fit the model (files copied in by hand). */
function fromLibrary(lib: VectorLibrary, name: string, field: string, byFile = false): SteeringVector {
  try {
    return lib.getFitting(name, field, byFile);
  } catch (e) {
    if (e instanceof SteerlabError)
      throw new SteerlabError(e.code === "not_found" ? "not_found" : "bad_input", e.brief, {
        ...e.details,
        field,
      });
    throw e;
  }
}

/** The layers a planned vector steers must exist in it. */
function checkHas(v: SteeringVector, layers: readonly number[], field: string): void {
  const missing = layers.filter((l) => !v.directions.has(l));
  if (missing.length) {
    throw new SteerlabError("bad_input", `the vector has no direction for layer ${missing.join(", ")}`, {
      field,
      expected: [...v.directions.keys()].sort((a, b) => a - b).join(", "),
    });
  }
}

export function planSteeringObject(
  s: SteeringObject,
  lib: VectorLibrary,
  config: ModelConfig,
  source: SteeringPlan["source"],
  field = "steering",
): SteeringPlan {
  const n = config.nLayers;
  const shared = s.layers ? resolveLayers(s.layers, n, `${field}.layers`) : undefined;
  const vectors = s.vectors.map((e, i): PlannedVector => {
    const f = `${field}.vectors[${i}]`;
    const op = e.operator ?? s.operator ?? "add";
    if (e.data) {
      const layers = e.layers
        ? resolveLayers(e.layers, n, `${f}.layers`)
        : e.data.length === n
          ? Array.from({ length: n }, (_, l) => l)
          : null;
      if (!layers || layers.length !== e.data.length) {
        throw bad(
          `inline data has ${e.data.length} rows for ${layers ? layers.length : "no"} layers`,
          `${f}.data`,
          `give one row per entry of ${f}.layers, or one row per model layer (${n})`,
        );
      }
      const dirs = new Map<number, Float32Array>();
      e.data.forEach((row, k) => {
        if (row.length !== config.hiddenSize) {
          throw new SteerlabError("bad_input", "inline direction of the wrong size", {
            field: `${f}.data[${k}]`,
            expected: `${config.hiddenSize} numbers (the model's hidden size)`,
            got: String(row.length),
          });
        }
        dirs.set(layers[k]!, Float32Array.from(row));
      });
      const use = shared?.filter((l) => dirs.has(l)) ?? layers;
      if (shared && use.length === 0) throw bad("no inline layer is among steering.layers", `${f}.layers`);
      let vector: SteeringVector;
      try {
        vector = makeVector(dirs, { scale: "raw" });
      } catch (err) {
        throw inField(err, `${f}.data`);
      }
      return { name: `inline[${i}]`, vector, scale: e.scale, layers: use, op, field: f };
    }
    const v = fromLibrary(lib, e.name!, `${f}.name`);
    const own = e.layers ? resolveLayers(e.layers, n, `${f}.layers`) : undefined;
    const layers =
      own ??
      shared ??
      (v.suggestedLayers.length ? [...v.suggestedLayers] : [...v.directions.keys()].sort((a, b) => a - b));
    checkHas(v, layers, own ? `${f}.layers` : shared ? `${field}.layers` : `${f}.name`);
    return { name: e.name!, vector: v, scale: e.scale, layers, op, field: f };
  });
  if (s.positions === "after" && !s.marker) throw bad('positions "after" needs a marker', `${field}.marker`);
  return {
    source,
    vectors,
    positions: s.positions ?? "all",
    ...(s.marker ? { marker: s.marker } : {}),
    normGuard: s.norm_guard ?? false,
  };
}

/** llama.cpp's control vectors: summed, each scaled, on direction indices in layer_range (inclusive), all positions. */
function planControlVectors(
  cvs: NonNullable<SteeringFields["control_vectors"]>,
  lib: VectorLibrary,
): SteeringPlan {
  const vectors = cvs.map((cv, i): PlannedVector => {
    const f = `control_vectors[${i}]`;
    const name = cv.id ?? cv.path!;
    const v = fromLibrary(lib, name, cv.id ? `${f}.id` : `${f}.path`, cv.id === undefined);
    const all = [...v.directions.keys()].sort((a, b) => a - b);
    const range = cv.layer_range;
    const layers = range
      ? all.filter((l) => {
          const k = controlVectorIndex(v.site, l);
          return k >= Math.min(...range) && k <= Math.max(...range);
        })
      : all;
    if (layers.length === 0) throw bad("layer_range selects no direction of the vector", `${f}.layer_range`);
    return { name, vector: v, scale: cv.scale, layers, op: "add", field: f };
  });
  return { source: "request", vectors, positions: "all", normGuard: false };
}

/**
 * The plan for a request: at most one of the three forms; absent = the server's default; false = none.
 */
export function planRequestSteering(
  req: SteeringFields,
  lib: VectorLibrary,
  config: ModelConfig,
  defaultPlan: SteeringPlan | null,
): SteeringPlan | null {
  const steer = req.vllm_xargs?.steer;
  const given = [req.steering !== undefined, req.control_vectors !== undefined, steer !== undefined].filter(
    Boolean,
  );
  if (given.length > 1) {
    throw bad(
      "give steering in one form only",
      "steering",
      "use one of steering, control_vectors, vllm_xargs.steer",
    );
  }
  if (req.control_vectors) return planControlVectors(req.control_vectors, lib);
  let s: false | SteeringObject | undefined = req.steering;
  let field = "steering";
  if (steer !== undefined) {
    const parsed = steeringSchema.safeParse(steer);
    if (!parsed.success) {
      const issue = specificIssue(parsed.error.issues[0]!);
      throw bad(issue.message, ["vllm_xargs", "steer", ...issue.path].join("."));
    }
    s = parsed.data;
    field = "vllm_xargs.steer";
  }
  if (s === undefined) return defaultPlan;
  if (s === false) return null;
  return planSteeringObject(s, lib, config, "request", field);
}

/** The hooks that apply a plan to one prompt (a batch of one; positions resolved against this prompt). */
export function planHooks(
  plan: SteeringPlan,
  tokenizer: Tokenizer,
  prompt: PreparedPrompt,
  nLayers: number,
): HookBinding[] {
  const positions = parsePositions(plan.positions, {
    promptLength: prompt.ids.length,
    markerIndex: plan.positions === "after" ? markerIndex(tokenizer, prompt, plan.marker ?? "") : undefined,
  });
  const entries: SteerEntry[] = plan.vectors.map((p) => ({
    vector: p.vector,
    coeff: p.scale,
    op: p.op,
    layers: p.layers,
  }));
  const opts = { positions, normGuard: plan.normGuard, nLayers };
  try {
    return steeringHooks(entries, opts);
  } catch (e) {
    // The library names its own argument ("coeff"); the client wants the request field of the vector at fault.
    if (!(e instanceof SteerlabError) || e.details.field !== "coeff") throw e;
    const i = entries.findIndex((en) => {
      try {
        steeringHooks([en], opts);
        return false;
      } catch {
        return true;
      }
    });
    throw inField(e, i >= 0 ? `${plan.vectors[i]!.field}.scale` : "steering");
  }
}

/** A library error re-raised at a request field (the message keeps its own details, once). */
function inField(e: unknown, field: string): unknown {
  return e instanceof SteerlabError ? new SteerlabError(e.code, e.brief, { ...e.details, field }) : e;
}

export function steeringEcho(plan: SteeringPlan | null): SteeringEcho | null {
  if (!plan) return null;
  return {
    source: plan.source,
    positions: plan.positions,
    ...(plan.marker ? { marker: plan.marker } : {}),
    norm_guard: plan.normGuard,
    vectors: plan.vectors.map((p) => ({
      name: p.name,
      scale: p.scale,
      layers: p.layers,
      operator: p.op,
      kind: p.vector.scale,
    })),
  };
}
