/**
 * Steering as the sweep needs it: one vector (a unit direction per layer at one hook site) added with a
 * coefficient that may differ per batch row, so several r_e values run as rows of one forward. Every real token
 * is steered (the paper's protocol: prompt and generated tokens); padding (position -1) is left alone.
 *
 * steer/apply.ts's steeringHooks takes one coefficient per call; stacking r_e values needs one per row, hence
 * this small add-only hook (a test checks it equals steeringHooks row by row). Vectors are read with
 * steer/vector-load.ts or drawn at random ("random:<seed>") for tests and benchmarks.
 */
import { SteerlabError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import type { HookBinding, HookContext } from "../model/engine.js";
import type { Site } from "../model/hooks.js";
import { gaussian, rng } from "../model/random.js";
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

/**
 * Hooks adding coeffs[b] * v_l to every real token of row b at each layer l of `layers`.
 * coeffs has one entry per batch row.
 */
export function rowSteeringHooks(
  vector: SweepVector,
  layers: readonly number[],
  coeffs: readonly number[],
): HookBinding[] {
  return layers.map((layer) => {
    const v = vector.directions.get(layer);
    if (!v)
      throw new SteerlabError("mismatch", `vector "${vector.name}" has no direction at layer ${layer}`, {
        expected: [...vector.directions.keys()].join(", "),
      });
    return {
      point: { layer, site: vector.site },
      fn: (ctx: HookContext) => {
        const D = ctx.dim;
        if (coeffs.length !== ctx.batch)
          throw new SteerlabError("bad_input", "one coefficient per batch row", {
            expected: String(ctx.batch),
            got: String(coeffs.length),
          });
        if (v.length !== D)
          throw new SteerlabError("mismatch", "vector width differs from the model", {
            expected: String(D),
            got: String(v.length),
          });
        // hidden [B, T, D]
        for (let b = 0; b < ctx.batch; b++) {
          const c = coeffs[b]!;
          if (c === 0) continue; // exact baseline: coefficient 0 touches nothing
          for (let t = 0; t < ctx.seq; t++) {
            if (ctx.positions[b * ctx.seq + t]! < 0) continue;
            const off = (b * ctx.seq + t) * D;
            for (let i = 0; i < D; i++) ctx.hidden[off + i] = ctx.hidden[off + i]! + c * v[i]!;
          }
        }
      },
    };
  });
}
