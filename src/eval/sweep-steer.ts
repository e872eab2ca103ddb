/**
 * Steering as the sweep needs it: one vector (a unit direction per layer at one hook site) added with a
 * coefficient that may differ per batch row, so several r_e values run as rows of one forward. Every real token
 * is steered (the paper's protocol: prompt and generated tokens); padding (position -1) is left alone.
 *
 * The hooks are steer/apply.ts's steeringHooks with one coefficient per row. Vectors are read with
 * steer/vector-load.ts or drawn at random ("random:<seed>") for tests and benchmarks.
 */
import { SteerlabError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { HookBinding } from "../model/engine.js";
import type { Site } from "../model/hooks.js";
import { gaussian, rng } from "../model/random.js";
import { steeringHooks } from "../steer/apply.js";
import { makeVector } from "../steer/vector.js";
import { loadVector } from "../steer/vector-load.js";

export interface SweepVector {
  readonly name: string;
  readonly site: Site;
  /** 0-based layer -> unit direction [D]. */
  readonly directions: ReadonlyMap<number, Float32Array>;
}

/** Unit-normalise a direction (r_e is a coefficient on a unit vector). */
export function unitVector(v: ArrayLike<number>, what: string): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s);
  if (!(n > 0) || !Number.isFinite(n))
    throw new SteerlabError("bad_input", "a steering direction is zero or not finite", { field: what });
  return Float32Array.from(v, (x) => x / n);
}

/** A seeded random unit direction at every layer (tests, benchmarks, null baselines). */
export function randomVector(
  name: string,
  nLayers: number,
  dim: number,
  seed: number,
  site: Site = "resid_pre",
): SweepVector {
  const g = gaussian(rng(seed));
  const directions = new Map<number, Float32Array>();
  for (let l = 0; l < nLayers; l++) {
    directions.set(
      l,
      unitVector(
        Float32Array.from({ length: dim }, () => g()),
        `layer ${l}`,
      ),
    );
  }
  return { name, site, directions };
}

/**
 * A vector from "random:<seed>" or a vector file (steerlab .safetensors or a llama.cpp .gguf control vector),
 * applied as stored: a unit vector's coefficient is the paper's r_e.
 */
export function loadSweepVector(
  source: string,
  name: string,
  model: { config: ModelConfig; fingerprint?: string },
): SweepVector {
  const { nLayers, hiddenSize } = model.config;
  const m = /^random:(\d+)$/.exec(source);
  if (m) return randomVector(name, nLayers, hiddenSize, Number(m[1]));
  const v = loadVector(source, model);
  if (v.hiddenSize !== hiddenSize)
    throw new SteerlabError("mismatch", "the vector was made for another model width", {
      file: source,
      expected: String(hiddenSize),
      got: String(v.hiddenSize),
    });
  return { name, site: v.site, directions: v.directions };
}

/** Hooks adding coeffs[b] * v_l to every real token of row b at each layer l of `layers` (one coefficient per row). */
export function rowSteeringHooks(
  vector: SweepVector,
  layers: readonly number[],
  coeffs: readonly number[],
): HookBinding[] {
  return steeringHooks(makeVector(new Map(vector.directions), { site: vector.site }), {
    layers,
    coeff: coeffs,
  });
}
