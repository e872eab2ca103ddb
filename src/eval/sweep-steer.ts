/**
 * Steering as the sweep needs it: one vector (a unit direction per layer at one hook site) added with a
 * coefficient that may differ per batch row, so several r_e values run as rows of one forward. Every real token
 * is steered (the paper's protocol: prompt and generated tokens); padding (position -1) is left alone.
 *
 * Vectors come from a JSON file ({ site?, directions: { "<layer>": number[] } }, each normalised to unit
 * length here, as r_e is a coefficient on unit vectors) or are drawn at random ("random:<seed>") for tests and
 * benchmarks.
 */
import { readFile } from "node:fs/promises";
import { SteerlabError } from "../errors.js";
import type { HookBinding, HookContext } from "../model/engine.js";
import { isSite, resolveLayer, type Site } from "../model/hooks.js";
import { gaussian, rng } from "../model/random.js";

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

/** Parse a JSON vector file; directions must have the model's width. */
export function parseVectorJson(
  text: string,
  file: string,
  name: string,
  nLayers: number,
  dim: number,
): SweepVector {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new SteerlabError("bad_file", `invalid JSON: ${(e as Error).message}`, { file });
  }
  const o = j as { site?: unknown; directions?: unknown };
  const site = o.site ?? "resid_pre";
  if (typeof site !== "string" || !isSite(site))
    throw new SteerlabError("bad_file", "unknown hook site", { file, field: "site", got: String(site) });
  if (!o.directions || typeof o.directions !== "object" || Array.isArray(o.directions))
    throw new SteerlabError("bad_file", "missing directions", {
      file,
      field: "directions",
      expected: '{ "<layer>": [numbers] }',
    });
  const directions = new Map<number, Float32Array>();
  const problems: string[] = [];
  for (const [k, v] of Object.entries(o.directions as Record<string, unknown>)) {
    if (!Array.isArray(v) || v.length !== dim || v.some((x) => typeof x !== "number")) {
      problems.push(`directions.${k}: expected ${dim} numbers`);
      continue;
    }
    try {
      directions.set(resolveLayer(Number(k), nLayers), unitVector(v as number[], `directions.${k}`));
    } catch (e) {
      problems.push(`directions.${k}: ${(e as Error).message}`);
    }
  }
  if (problems.length || directions.size === 0)
    throw new SteerlabError("mismatch", "vector file does not fit the model", {
      file,
      problems,
      expected: `layers < ${nLayers}, width ${dim}`,
    });
  return { name, site, directions };
}

/** A vector from "random:<seed>" or a JSON file path. */
export async function loadSweepVector(
  source: string,
  name: string,
  nLayers: number,
  dim: number,
): Promise<SweepVector> {
  const m = /^random:(\d+)$/.exec(source);
  if (m) return randomVector(name, nLayers, dim, Number(m[1]));
  let text: string;
  try {
    text = await readFile(source, "utf8");
  } catch (e) {
    throw new SteerlabError("not_found", `cannot read vector file: ${(e as Error).message}`, {
      file: source,
    });
  }
  return parseVectorJson(text, source, name, nLayers, dim);
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
