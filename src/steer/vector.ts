/**
 * A steering vector in memory: one direction per layer plus everything needed to apply it unambiguously
 * (site, layer convention, scale) and to know where it came from (model, method, data, diagnostics).
 *
 * Layer convention (DESIGN.md section 2): keys are 0-based blocks; at site resid_post the direction for layer l
 * is added to the output of block l (= HF hidden_states[l + 1] = llama.cpp l_out-l).
 */
import { SteerlabError } from "../errors.js";
import { checkFiniteDirections, type FiniteOptions } from "../io/finite.js";
import type { ModelConfig } from "../model/config.js";
import type { Site } from "../model/hooks.js";
import { VERSION } from "../version.js";
import type { LayerDiagnostics } from "./diagnostics.js";
import type { ExtractionResult } from "./extract.js";

export interface ModelIdentity {
  arch: string;
  hiddenSize: number;
  nLayers: number;
  /** LoadedModel.fingerprint (sha256 of config, tensor names/shapes and sampled weights), if known. */
  fingerprint: string | null;
}

export interface SteeringVector {
  site: Site;
  hiddenSize: number;
  /** 0-based block -> direction [D]. */
  directions: Map<number, Float32Array>;
  /** The model it was made for; null when unknown (e.g. a control vector with only a model hint). */
  model: ModelIdentity | null;
  /** Free-text model name (GGUF controlvector.model_hint), if any. */
  modelHint: string | null;
  method: string;
  /** Where activations were read, e.g. "last", "index:-2", "mean-suffix:5" (the reader's own spec). */
  readPosition: string | null;
  dataset: { hash: string; size: number } | null;
  diagnostics: Map<number, LayerDiagnostics>;
  /** Per-layer facts from the method (iterations, converged, sign votes, shuffle seed...), if any. */
  methodInfo?: Map<number, Record<string, number | boolean | string>>;
  suggestedLayers: number[];
  /**
   * "unit": each direction has norm 1 and a coefficient is the paper's r_e; "raw": directions carry their own
   * magnitude (sums, imported control vectors) and a coefficient multiplies them as they are.
   */
  scale: "unit" | "raw";
  /** What "positive" means, e.g. "positive member projects higher". */
  signConvention: string;
  createdBy: string;
}

export const SIGN_CONVENTION = "the positive member (or label) projects higher";

/** Build a vector from an extraction result plus the facts the caller knows about model and data. */
export function vectorFromExtraction(
  r: ExtractionResult,
  opts: {
    site?: Site;
    model?: ModelConfig | ModelIdentity | null;
    fingerprint?: string | null;
    modelHint?: string | null;
    readPosition?: string | null;
    dataset?: { hash: string; size: number } | null;
  } = {},
): SteeringVector {
  const first = r.directions.values().next().value;
  if (!first) throw new SteerlabError("bad_input", "extraction result has no layers");
  checkFiniteDirections(r.directions, undefined); // hidden states a hook or the weights made NaN end here
  return {
    site: opts.site ?? "resid_post",
    hiddenSize: first.length,
    directions: new Map(r.directions),
    model: opts.model ? identity(opts.model, opts.fingerprint ?? null) : null,
    modelHint: opts.modelHint ?? null,
    method: r.method,
    readPosition: opts.readPosition ?? null,
    dataset: opts.dataset ?? null,
    diagnostics: new Map(r.diagnostics),
    methodInfo: new Map(r.info),
    suggestedLayers: [...r.suggestedLayers],
    scale: "unit",
    signConvention: SIGN_CONVENTION,
    createdBy: `steerlab ${VERSION}`,
  };
}

export function identity(m: ModelConfig | ModelIdentity, fingerprint: string | null = null): ModelIdentity {
  const fp = "fingerprint" in m ? (m.fingerprint ?? fingerprint) : fingerprint;
  return { arch: m.arch, hiddenSize: m.hiddenSize, nLayers: m.nLayers, fingerprint: fp };
}

/** A bare vector from directions (tests, arithmetic, imports); provenance fields empty. */
export function makeVector(
  directions: Map<number, Float32Array>,
  opts: Partial<Omit<SteeringVector, "directions" | "hiddenSize">> = {},
  check: FiniteOptions & { file?: string } = {},
): SteeringVector {
  const first = directions.values().next().value;
  if (!first) throw new SteerlabError("bad_input", "a vector needs at least one layer");
  for (const [l, v] of directions) {
    if (!Number.isInteger(l) || l < 0) {
      throw new SteerlabError("bad_input", `layer key ${l} is not a 0-based block index`);
    }
    if (v.length !== first.length) {
      throw new SteerlabError("bad_tensor", `direction for layer ${l} has length ${v.length}`, {
        expected: String(first.length),
      });
    }
  }
  // Every vector passes here (files, extraction, arithmetic): NaN/Inf or an f32-overflowing norm stops now.
  checkFiniteDirections(directions, check.file, check);
  return {
    site: opts.site ?? "resid_post",
    hiddenSize: first.length,
    directions,
    model: opts.model ?? null,
    modelHint: opts.modelHint ?? null,
    method: opts.method ?? "manual",
    readPosition: opts.readPosition ?? null,
    dataset: opts.dataset ?? null,
    diagnostics: opts.diagnostics ?? new Map(),
    ...(opts.methodInfo ? { methodInfo: opts.methodInfo } : {}),
    suggestedLayers: opts.suggestedLayers ?? [],
    scale: opts.scale ?? "raw",
    signConvention: opts.signConvention ?? SIGN_CONVENTION,
    createdBy: opts.createdBy ?? `steerlab ${VERSION}`,
  };
}

/**
 * Throw SteerlabError("mismatch") listing every reason `v` cannot be applied to a model with config `c`:
 * hidden size, layers beyond the model, a different layer count or architecture, a different weights
 * fingerprint (when both are known, unless allowed).
 */
export function checkVectorFits(
  v: SteeringVector,
  c: ModelConfig,
  fingerprint?: string | null,
  opts: { allowOtherWeights?: boolean; file?: string } = {},
): void {
  const problems: string[] = [];
  if (v.hiddenSize !== c.hiddenSize)
    problems.push(`hidden size: vector ${v.hiddenSize}, model ${c.hiddenSize}`);
  const beyond = [...v.directions.keys()].filter((l) => l >= c.nLayers);
  if (beyond.length)
    problems.push(
      `layers ${beyond.join(", ")} do not exist: the model has ${c.nLayers} blocks (0..${c.nLayers - 1})`,
    );
  if (v.model) {
    if (v.model.nLayers !== c.nLayers)
      problems.push(`layer count: vector made for ${v.model.nLayers}, model has ${c.nLayers}`);
    if (v.model.arch !== c.arch)
      problems.push(`architecture: vector made for ${v.model.arch}, model is ${c.arch}`);
    if (
      !opts.allowOtherWeights &&
      fingerprint &&
      v.model.fingerprint &&
      v.model.fingerprint !== fingerprint
    ) {
      problems.push(`weights: vector made for fingerprint ${v.model.fingerprint}, model is ${fingerprint}`);
    }
  }
  if (problems.length) {
    throw new SteerlabError("mismatch", "the steering vector does not fit this model", {
      file: opts.file,
      problems,
      hint: problems.some((p) => p.startsWith("weights"))
        ? "same shapes but other weights: pass allowOtherWeights if that is intended (e.g. base vs chat)"
        : "extract the vector from this model",
    });
  }
}
