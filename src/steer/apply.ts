/**
 * Applying vectors: operators as Hook factories for one call (generation, scoring, a request). Nothing is
 * registered globally; the returned HookBinding[] go into ForwardOptions.hooks of the calls that want them.
 *
 * Operators on a hidden state h at a steered position, with v the stored direction and u = v / ||v||:
 *   add     h <- h + c v                  (the paper's r_e when v is unit)
 *   ablate  h <- h - (h . u) u            (remove the component along v; c is ignored)
 *   clamp   h <- h + (c - h . u) u        (set the component along v to c)
 * Several vectors at one hook point apply in the order given. The optional norm guard rescales each steered
 * position back to its norm before steering (off by default, as in the paper).
 *
 * Positions are decided from ABSOLUTE token positions (HookContext.positions: real tokens before this one in
 * its row, counted across cached calls; -1 = padding, never steered), so a prefill call followed by cached
 * decode calls steers exactly the tokens one uncached call over the whole sequence steers.
 */
import { SteerlabError } from "../errors.js";
import { F32_MAX } from "../io/finite.js";
import type { Hook, HookBinding, HookContext } from "../model/engine.js";
import { hookName, parseLayers, resolveLayer } from "../model/hooks.js";
import type { SteeringVector } from "./vector.js";

/** A number for every row, or one number for all rows (e.g. prompt lengths in a left-padded batch). */
export type RowValue = number | readonly number[];

export type PositionSpec =
  | "all"
  | { mode: "all" }
  /** Prompt tokens: position < promptLength (real tokens of the prompt in that row). */
  | { mode: "prompt"; promptLength: RowValue }
  /** Generated tokens: position >= promptLength. */
  | { mode: "generated"; promptLength: RowValue }
  /** Strictly after a marker: position > index, the marker's last token (the caller finds it after tokenising). */
  | { mode: "after"; index: RowValue }
  /** The first k tokens: position < k. */
  | { mode: "first"; k: number }
  /** The last k prompt tokens: promptLength - k <= position < promptLength. */
  | { mode: "last"; k: number; promptLength: RowValue }
  /** An absolute window: start <= position < end. */
  | { mode: "window"; start: number; end: number };

export type SteerOp = "add" | "ablate" | "clamp";

export interface SteerOptions {
  /**
   * Coefficient (add) or target component (clamp), default 1; or one per batch row, so one forward can carry
   * several r_e values (a sweep stacks its grid this way).
   */
  coeff?: RowValue;
  /** 0-based layers, negative from the end, or a spec ("-5..-1", "10,12", "all"); default every layer of the vector. */
  layers?: readonly number[] | string;
  positions?: PositionSpec;
  op?: SteerOp;
  /** Rescale each steered position to its unsteered norm. Default false (the paper does not). */
  normGuard?: boolean;
  /** The model's block count (to resolve negative layers and specs); default the vector's model. */
  nLayers?: number;
}

/** One vector with its own overrides of the shared options. */
export interface SteerEntry {
  vector: SteeringVector;
  coeff?: RowValue;
  op?: SteerOp;
  layers?: readonly number[] | string;
}

function rowValue(v: RowValue, row: number, what: string): number {
  if (typeof v === "number") return v;
  const x = v[row];
  if (x === undefined) {
    throw new SteerlabError("bad_input", `${what} has no value for batch row ${row}`, {
      expected: "one value per row",
      got: `${v.length} values`,
    });
  }
  return x;
}

/** (row, absolute position) -> steer this token? Padding (position -1) is never steered. */
export function positionSelector(spec: PositionSpec = "all"): (row: number, pos: number) => boolean {
  const s = typeof spec === "string" ? { mode: spec } : spec;
  switch (s.mode) {
    case "all":
      return (_r, p) => p >= 0;
    case "prompt":
      return (r, p) => p >= 0 && p < rowValue(s.promptLength, r, "promptLength");
    case "generated":
      return (r, p) => p >= rowValue(s.promptLength, r, "promptLength");
    case "after":
      return (r, p) => p > rowValue(s.index, r, "marker index");
    case "first":
      return (_r, p) => p >= 0 && p < s.k;
    case "last":
      return (r, p) => {
        const n = rowValue(s.promptLength, r, "promptLength");
        return p >= n - s.k && p < n && p >= 0;
      };
    case "window":
      return (_r, p) => p >= s.start && p < s.end && p >= 0;
    default:
      throw new SteerlabError("bad_input", `unknown position mode "${(s as { mode: string }).mode}"`);
  }
}

/**
 * Parse a CLI position spec: all | prompt | generated | after | first:K | last:K | window:A..B.
 * "prompt", "generated" and "last" need the prompt lengths, "after" the marker index (both after tokenising).
 */
export function parsePositions(
  spec: string,
  ctx: { promptLength?: RowValue; markerIndex?: RowValue } = {},
): PositionSpec {
  const need = (v: RowValue | undefined, what: string): RowValue => {
    if (v === undefined) throw new SteerlabError("bad_input", `positions "${spec}" need the ${what}`);
    return v;
  };
  const s = spec.trim();
  if (s === "all") return "all";
  if (s === "prompt" || s === "generated")
    return { mode: s, promptLength: need(ctx.promptLength, "prompt length") };
  if (s === "after") return { mode: "after", index: need(ctx.markerIndex, "marker index") };
  let m = /^(first|last):(\d+)$/.exec(s);
  if (m) {
    const k = Number(m[2]);
    return m[1] === "first"
      ? { mode: "first", k }
      : { mode: "last", k, promptLength: need(ctx.promptLength, "prompt length") };
  }
  m = /^window:(\d+)\.\.(\d+)$/.exec(s);
  if (m) {
    const start = Number(m[1]);
    const end = Number(m[2]);
    if (!(start < end))
      throw new SteerlabError("bad_input", `positions window:${start}..${end} is empty: A must be below B`, {
        field: "positions",
        got: s,
        expected: "window:A..B with A < B (positions A..B-1)",
      });
    return { mode: "window", start, end };
  }
  throw new SteerlabError("bad_input", `bad positions "${spec}"`, {
    expected: "all | prompt | generated | after | first:K | last:K | window:A..B",
  });
}

interface Action {
  op: SteerOp;
  coeff: RowValue;
  v: Float32Array;
  /** v / ||v|| (ablate, clamp). */
  u: Float32Array;
}

function unitOf(v: Float32Array, what: string): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  if (!(n > 0))
    throw new SteerlabError("bad_input", `${what} is a zero direction; cannot ablate or clamp along it`);
  return Float32Array.from(v, (x) => x / n);
}

/** The hook that applies `actions` in order at the selected positions of every call it is bound to. */
export function steeringHook(
  actions: readonly Action[],
  select: (row: number, pos: number) => boolean,
  normGuard: boolean,
): Hook {
  return (ctx: HookContext) => {
    const { hidden: h, batch, seq, dim, positions } = ctx;
    for (const a of actions) {
      if (a.v.length !== dim) {
        throw new SteerlabError(
          "mismatch",
          `steering vector of size ${a.v.length} at a hook of width ${dim}`,
          {
            field: hookName(ctx.point.layer, ctx.point.site),
          },
        );
      }
    }
    for (let b = 0; b < batch; b++) {
      const coeffs = actions.map((a) => rowValue(a.coeff, b, "coeff"));
      for (let t = 0; t < seq; t++) {
        const pos = positions[b * seq + t]!;
        if (pos < 0 || !select(b, pos)) continue;
        const o = (b * seq + t) * dim; // hidden [B, T, D]
        let before = 0;
        if (normGuard) for (let j = 0; j < dim; j++) before += h[o + j]! * h[o + j]!;
        actions.forEach((a, k) => {
          const c = coeffs[k]!;
          if (a.op === "add") {
            // c = 0 leaves every bit as it was (the exact unsteered baseline)
            if (c !== 0) for (let j = 0; j < dim; j++) h[o + j]! += c * a.v[j]!;
            return;
          }
          let proj = 0;
          for (let j = 0; j < dim; j++) proj += h[o + j]! * a.u[j]!;
          const delta = (a.op === "clamp" ? c : 0) - proj;
          for (let j = 0; j < dim; j++) h[o + j]! += delta * a.u[j]!;
        });
        if (normGuard) {
          let after = 0;
          for (let j = 0; j < dim; j++) after += h[o + j]! * h[o + j]!;
          if (after > 0) {
            const k = Math.sqrt(before / after);
            for (let j = 0; j < dim; j++) h[o + j]! *= k;
          }
        }
      }
    }
  };
}

function resolveLayers(
  spec: readonly number[] | string | undefined,
  v: SteeringVector,
  nLayers: number | undefined,
): number[] {
  if (spec === undefined) return [...v.directions.keys()].sort((a, b) => a - b);
  const n = nLayers ?? v.model?.nLayers;
  if (typeof spec === "string") {
    if (n === undefined)
      throw new SteerlabError("bad_input", "a layer spec needs the model's layer count", {
        hint: "pass nLayers",
      });
    return parseLayers(spec, n);
  }
  return spec.map((l) => {
    if (l >= 0) return l;
    if (n === undefined)
      throw new SteerlabError("bad_input", "negative layers need the model's layer count", {
        hint: "pass nLayers",
      });
    return resolveLayer(l, n);
  });
}

/**
 * coeff * v must leave the residual stream computable in float32: its squared norm (what the next RMSNorm or
 * LayerNorm sums) has to stay below FLT_MAX, i.e. |coeff| * ||v|| below ~1.8e19. Past that every engine in f32
 * returns NaN; refusing here names the coefficient instead.
 */
function checkSteerMagnitude(coeff: RowValue, d: Float32Array, layer: number): void {
  const c = typeof coeff === "number" ? Math.abs(coeff) : coeff.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i]! * d[i]!;
  const size = c * Math.sqrt(s);
  if (!(size * size <= F32_MAX)) {
    throw new SteerlabError(
      "bad_input",
      "steering coefficient too large: the residual stream would overflow float32",
      {
        field: "coeff",
        expected: `|coeff| * ||v|| <= ${Math.sqrt(F32_MAX).toExponential(2)}`,
        got: `${c} * ${Math.sqrt(s).toExponential(3)} = ${size.toExponential(3)} at layer ${layer}`,
        hint: "the paper's r_e are in -10..10 for unit vectors",
      },
    );
  }
}

/**
 * Hook bindings that steer one call with one or several vectors: one binding per (layer, site) touched, the
 * vectors' actions at that point applied in the order given.
 */
export function steeringHooks(
  vectors: SteeringVector | SteerEntry | readonly (SteeringVector | SteerEntry)[],
  opts: SteerOptions = {},
): HookBinding[] {
  const list = (Array.isArray(vectors) ? vectors : [vectors]) as (SteeringVector | SteerEntry)[];
  const entries: SteerEntry[] = list.map((e) => ("vector" in e ? e : { vector: e }));
  const byPoint = new Map<string, { layer: number; site: SteeringVector["site"]; actions: Action[] }>();
  for (const e of entries) {
    const v = e.vector;
    const op = e.op ?? opts.op ?? "add";
    const coeff = e.coeff ?? opts.coeff ?? 1;
    if (!(typeof coeff === "number" ? [coeff] : coeff).every(Number.isFinite))
      throw new SteerlabError("bad_input", "coefficient must be finite", { got: String(coeff) });
    for (const layer of resolveLayers(e.layers ?? opts.layers, v, opts.nLayers)) {
      const d = v.directions.get(layer);
      if (!d) {
        throw new SteerlabError("bad_input", `the vector has no direction for layer ${layer}`, {
          expected: [...v.directions.keys()].sort((a, b) => a - b).join(", "),
          hint: "choose layers the vector has (steerlab vector info)",
        });
      }
      const key = hookName(layer, v.site);
      let p = byPoint.get(key);
      if (!p) {
        p = { layer, site: v.site, actions: [] };
        byPoint.set(key, p);
      }
      if (op === "add") checkSteerMagnitude(coeff, d, layer);
      p.actions.push({ op, coeff, v: d, u: op === "add" ? d : unitOf(d, `layer ${layer}`) });
    }
  }
  const select = positionSelector(opts.positions);
  return [...byPoint.values()].map((p) => ({
    point: { layer: p.layer, site: p.site },
    fn: steeringHook(p.actions, select, opts.normGuard ?? false),
  }));
}
