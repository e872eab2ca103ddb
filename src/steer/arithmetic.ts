/**
 * Vector arithmetic, per layer: sum, scale, negate, orthogonalise one against another, select layers,
 * normalise. Inputs are never modified. Results of sums and projections are "raw" (their norms are whatever
 * the arithmetic gives) unless normalised again; provenance that no longer holds (diagnostics) is dropped.
 */
import { SteerlabError } from "../errors.js";
import { parseLayers } from "../model/hooks.js";
import { makeVector, type SteeringVector } from "./vector.js";

function compatible(a: SteeringVector, b: SteeringVector, op: string): void {
  const problems: string[] = [];
  if (a.hiddenSize !== b.hiddenSize) problems.push(`hidden size ${a.hiddenSize} vs ${b.hiddenSize}`);
  if (a.site !== b.site) problems.push(`site ${a.site} vs ${b.site}`);
  if (a.model && b.model && (a.model.arch !== b.model.arch || a.model.nLayers !== b.model.nLayers)) {
    problems.push(
      `model ${a.model.arch}/${a.model.nLayers} layers vs ${b.model.arch}/${b.model.nLayers} layers`,
    );
  }
  if (problems.length)
    throw new SteerlabError("mismatch", `cannot ${op} vectors made differently`, { problems });
}

function derived(
  base: SteeringVector,
  directions: Map<number, Float32Array>,
  method: string,
  scale: "unit" | "raw",
): SteeringVector {
  return makeVector(directions, {
    site: base.site,
    model: base.model,
    modelHint: base.modelHint,
    method,
    readPosition: base.readPosition,
    scale,
    signConvention: base.signConvention,
  });
}

/** Weighted sum: sum_k w_k v_k, layer by layer over the union of layers (a missing layer counts as 0). */
export function sum(vectors: readonly SteeringVector[], weights?: readonly number[]): SteeringVector {
  if (vectors.length === 0) throw new SteerlabError("bad_input", "sum of no vectors");
  if (weights && weights.length !== vectors.length) {
    throw new SteerlabError("bad_input", "one weight per vector", {
      expected: String(vectors.length),
      got: String(weights.length),
    });
  }
  const first = vectors[0]!;
  for (const v of vectors.slice(1)) compatible(first, v, "add");
  const out = new Map<number, Float32Array>();
  vectors.forEach((v, k) => {
    const w = weights?.[k] ?? 1;
    for (const [l, d] of v.directions) {
      const acc = out.get(l) ?? new Float32Array(first.hiddenSize);
      for (let j = 0; j < d.length; j++) acc[j]! += w * d[j]!;
      out.set(l, acc);
    }
  });
  const label = vectors.map((v, k) => `${weights?.[k] ?? 1}*${v.method}`).join(" + ");
  return derived(first, out, `sum(${label})`, "raw");
}

export function scale(v: SteeringVector, c: number): SteeringVector {
  if (!Number.isFinite(c))
    throw new SteerlabError("bad_input", "scale factor must be finite", { got: String(c) });
  const out = new Map<number, Float32Array>();
  for (const [l, d] of v.directions)
    out.set(
      l,
      Float32Array.from(d, (x) => c * x),
    );
  const keepsUnit = v.scale === "unit" && Math.abs(c) === 1;
  const r = derived(v, out, `${c}*${v.method}`, keepsUnit ? "unit" : "raw");
  return keepsUnit ? { ...r, dataset: v.dataset } : r;
}

/** -v: flips the sign convention too (the negative member now projects higher). */
export function negate(v: SteeringVector): SteeringVector {
  const r = scale(v, -1);
  return { ...r, method: `-${v.method}`, signConvention: `negated: ${v.signConvention}` };
}

/**
 * a with, at every layer both have, its component along b removed: a_l - (a_l . b_l / b_l . b_l) b_l.
 * Layers only in a are kept as they are. A zero b_l leaves a_l unchanged.
 */
export function orthogonalize(a: SteeringVector, b: SteeringVector): SteeringVector {
  compatible(a, b, "orthogonalise");
  const out = new Map<number, Float32Array>();
  for (const [l, x] of a.directions) {
    const y = b.directions.get(l);
    if (!y) {
      out.set(l, Float32Array.from(x));
      continue;
    }
    let xy = 0;
    let yy = 0;
    for (let j = 0; j < x.length; j++) {
      xy += x[j]! * y[j]!;
      yy += y[j]! * y[j]!;
    }
    const k = yy > 0 ? xy / yy : 0;
    out.set(
      l,
      Float32Array.from(x, (t, j) => t - k * y[j]!),
    );
  }
  return derived(a, out, `${a.method} _|_ ${b.method}`, "raw");
}

/** Each layer's direction scaled to unit norm (a zero direction is an error). */
export function normalize(v: SteeringVector): SteeringVector {
  const out = new Map<number, Float32Array>();
  for (const [l, d] of v.directions) {
    let n = 0;
    for (const x of d) n += x * x;
    n = Math.sqrt(n);
    if (!(n > 0)) throw new SteerlabError("bad_input", `direction for layer ${l} is zero; cannot normalise`);
    out.set(
      l,
      Float32Array.from(d, (x) => x / n),
    );
  }
  return { ...derived(v, out, v.method, "unit"), dataset: v.dataset };
}

/**
 * Keep only some layers: a list of 0-based layers or a spec ("-5..-1", "10,12", "all") resolved against the
 * model's layer count (given, or the vector's model). Asking for a layer the vector lacks is an error.
 */
export function selectLayers(
  v: SteeringVector,
  layers: readonly number[] | string,
  nLayers?: number,
): SteeringVector {
  const n = nLayers ?? v.model?.nLayers;
  let want: number[];
  if (typeof layers === "string") {
    if (n === undefined) {
      throw new SteerlabError("bad_input", "a layer spec needs the model's layer count", {
        hint: "pass nLayers",
      });
    }
    want = parseLayers(layers, n);
  } else {
    want = layers.map((l) => (l < 0 && n !== undefined ? n + l : l));
  }
  const missing = want.filter((l) => !v.directions.has(l));
  if (missing.length) {
    throw new SteerlabError("bad_input", `the vector has no direction for layer(s) ${missing.join(", ")}`, {
      expected: [...v.directions.keys()].sort((a, b) => a - b).join(", "),
    });
  }
  const out = new Map(want.map((l) => [l, Float32Array.from(v.directions.get(l)!)]));
  const diagnostics = new Map([...v.diagnostics].filter(([l]) => out.has(l)));
  return { ...v, directions: out, diagnostics, suggestedLayers: v.suggestedLayers.filter((l) => out.has(l)) };
}
