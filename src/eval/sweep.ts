/**
 * The sweep runner: every (task, variant, item, r_e) cell of the grid scored once and appended to a
 * ResultStore, so an interrupted sweep resumes where it stopped. A variant is one vector on one layer set.
 *
 * Work goes by prompt chunks (batchSize prompts of one task and variant):
 *   behavior-generate   rows = (prompt, r_e) pairs still missing; greedy generation with per-row coefficients
 *   behavior-logprob    rows = prompt + each continuation; logits at the continuation tokens
 *   mcq                 rows = prompts; the last position's logits (plus an unsteered baseline for A1/A3)
 * For the two scorers without generation the forward below the first steered layer L does not depend on r_e:
 * resid_pre[L] of the chunk is computed once (stopAfterLayer L-1) and every r_e resumes from it
 * (startLayer/inputHidden), with several r_e values stacked as rows of one forward.
 */
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Batch, Engine, ForwardOptions, HookBinding } from "../model/engine.js";
import { generateBatch } from "../model/generate.js";
import { classifyKeywords } from "./score-behavior.js";
import { a3Projections, deltaLogitNorm } from "./score-diagnostics.js";
import { scoreHelpfulness } from "./score-helpfulness.js";
import { scoreLogprobs } from "./score-logprob.js";
import type { ResultStore, SweepRecord } from "./store.js";
import { rowSteeringHooks, type SweepVector } from "./sweep-steer.js";
import { DEFAULT_ALIGNED, DEFAULT_MISALIGNED, type LoadedTask, letterIds, rulesOf } from "./tasks.js";

export interface Variant {
  /** "<vector>@<layers>", the store's variant key. */
  id: string;
  vector: SweepVector;
  /** Steered blocks, ascending. */
  layers: readonly number[];
}

export interface SweepPlan {
  tasks: readonly LoadedTask[];
  variants: readonly Variant[];
  coeffs: readonly number[];
  /** A1/A3 on mcq tasks (needs one unsteered forward per chunk). Default true. */
  diagnostics?: boolean;
}

export interface RunOptions {
  /** Prompts per chunk (default 8). */
  batchSize?: number;
  /** Most rows in one forward when r_e values are stacked (default 32; at least one r_e per forward). */
  maxRows?: number;
  /** Compute resid_pre of the first steered layer once per chunk (default true). false: the naive sweep. */
  reuse?: boolean;
  /** Log-prob tasks: one row serves every continuation whose scored prefix it contains (default true). */
  mergeRows?: boolean;
  signal?: AbortSignal;
  /** Cells done (stored before or now) out of the grid's total. */
  onProgress?: (done: number, total: number) => void;
}

export interface SweepStats {
  total: number;
  skipped: number;
  computed: number;
  forwards: number;
  /** Whether a prefix was computed and reused (false when off, L = 0, or the engine lacks startLayer). */
  reused: boolean;
}

function requireTokenizerOf(tok: Tokenizer | null, task: string): Tokenizer {
  if (!tok)
    throw new SteerlabError("not_found", "this model has no tokenizer; sweep tasks need one", {
      field: `tasks.${task}`,
    });
  return tok;
}

/** Layer-set label of a variant id. */
export function layersLabel(layers: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < layers.length; ) {
    let j = i;
    while (j + 1 < layers.length && layers[j + 1] === layers[j]! + 1) j++;
    parts.push(j > i ? `${layers[i]}..${layers[j]}` : String(layers[i]));
    i = j + 1;
  }
  return parts.join(",");
}

interface Ctx {
  engine: Engine;
  tokenizer: Tokenizer | null;
  store: ResultStore;
  opts: RunOptions;
  stats: SweepStats;
  reuseOk: boolean;
  done: number;
  progress(n: number): void;
}

/** Left-pad rows into one batch. ids/mask [B][T]. */
function padded(rows: readonly (readonly number[])[]): Batch & { T: number } {
  const T = Math.max(...rows.map((r) => r.length));
  return {
    T,
    ids: rows.map((r) => [...new Array<number>(T - r.length).fill(0), ...r]),
    mask: rows.map((r) => [
      ...new Array<number>(T - r.length).fill(0),
      ...new Array<number>(r.length).fill(1),
    ]),
  };
}

/** Stack `reps` copies of a batch (row b of copy k is row k*B + b). */
function repeatBatch(b: Batch, reps: number): Batch {
  const ids = [];
  const mask = [];
  for (let k = 0; k < reps; k++) {
    ids.push(...b.ids);
    mask.push(...b.mask!);
  }
  return { ids, mask };
}

function repeatHidden(h: Float32Array, reps: number): Float32Array {
  const out = new Float32Array(h.length * reps); // [reps * B, T, D]
  for (let k = 0; k < reps; k++) out.set(h, k * h.length);
  return out;
}

const resumable = new WeakMap<Engine, boolean>();

/**
 * Whether the engine honours startLayer/inputHidden: resume the last block of a one-token batch from a NaN
 * residual. An engine that honours it returns NaN logits; one that ignores the option (computing from the ids)
 * returns finite ones; one that refuses it throws. One block of one token, once per engine.
 */
async function supportsResume(engine: Engine): Promise<boolean> {
  const known = resumable.get(engine);
  if (known !== undefined) return known;
  const { nLayers, hiddenSize } = engine.config;
  let ok: boolean;
  try {
    const out = await engine.forward(
      { ids: [[0]] },
      { logits: "last", startLayer: nLayers - 1, inputHidden: new Float32Array(hiddenSize).fill(Number.NaN) },
    );
    ok = out.logits.length > 0 && out.logits.every((x) => Number.isNaN(x));
  } catch {
    ok = false;
  }
  resumable.set(engine, ok);
  return ok;
}

/** resid_pre[L] of the batch ([B, T, D]), or null when there is nothing below L to save. */
async function prefix(c: Ctx, batch: Batch, L: number): Promise<Float32Array | null> {
  if (!c.reuseOk || L === 0) return null;
  if (!(await supportsResume(c.engine))) {
    c.reuseOk = false;
    return null;
  }
  let hidden: Float32Array | null = null;
  const capture: HookBinding = {
    point: { layer: L - 1, site: "resid_post" },
    fn: (ctx) => (hidden = ctx.hidden.slice()),
  };
  await c.engine.forward(batch, { logits: "none", stopAfterLayer: L - 1, hooks: [capture] });
  c.stats.forwards++;
  c.stats.reused = true;
  return hidden;
}

/**
 * Forward `reps` stacked copies of `batch` with per-row coefficients, resuming at L from `hidden` when given.
 * An engine that refuses startLayer (unsupported) turns reuse off for the rest of the run.
 */
async function steeredForward(
  c: Ctx,
  batch: Batch,
  hidden: Float32Array | null,
  v: Variant,
  rowCoeffs: readonly number[],
  logits: "all" | "last",
): Promise<Float32Array> {
  const reps = rowCoeffs.length / batch.ids.length;
  const big = repeatBatch(batch, reps);
  const hooks = rowSteeringHooks(v.vector, v.layers, rowCoeffs);
  const L = v.layers[0]!;
  c.opts.signal?.throwIfAborted();
  c.stats.forwards++;
  if (hidden && c.reuseOk) {
    const o: ForwardOptions = { logits, hooks, startLayer: L, inputHidden: repeatHidden(hidden, reps) };
    try {
      return (await c.engine.forward(big, o)).logits;
    } catch (e) {
      if (!(e instanceof SteerlabError && e.code === "unsupported")) throw e;
      c.reuseOk = false;
    }
  }
  return (await c.engine.forward(big, { logits, hooks })).logits;
}

/** The r_e values of the grid with at least one item of the chunk still missing. */
function missingCoeffs(
  c: Ctx,
  task: string,
  v: Variant,
  items: readonly number[],
  coeffs: readonly number[],
): number[] {
  return coeffs.filter((r) => items.some((i) => !c.store.has(task, v.id, i, r)));
}

/** Groups of r_e values so that rows x group <= maxRows (at least one value per group). */
function groups(coeffs: readonly number[], rows: number, maxRows: number): number[][] {
  const g = Math.max(1, Math.floor(maxRows / rows));
  const out: number[][] = [];
  for (let i = 0; i < coeffs.length; i += g) out.push(coeffs.slice(i, i + g));
  return out;
}

/** Store the records of cells still missing; count progress for every cell of the chunk at these r_e. */
function commit(c: Ctx, recs: readonly SweepRecord[]): void {
  const fresh = recs.filter((r) => !c.store.has(r.task, r.variant, r.item, r.r));
  c.store.append(fresh);
  c.stats.computed += fresh.length;
  c.progress(fresh.length);
}

async function runGenerate(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
): Promise<void> {
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const rules = rulesOf(t.spec);
  const cells = coeffs.flatMap((r) =>
    chunk.filter((it) => !c.store.has(t.spec.id, v.id, it.index, r)).map((it) => ({ it, r })),
  );
  const maxRows = c.opts.maxRows ?? 32;
  for (let s = 0; s < cells.length; s += maxRows) {
    const part = cells.slice(s, s + maxRows);
    c.opts.signal?.throwIfAborted();
    const res = await generateBatch(
      c.engine,
      tok,
      part.map((x) => x.it.prompt),
      {
        maxNewTokens: t.spec.maxNewTokens ?? 16,
        hooks: rowSteeringHooks(
          v.vector,
          v.layers,
          part.map((x) => x.r),
        ),
        signal: c.opts.signal,
      },
    );
    c.opts.signal?.throwIfAborted(); // an aborted generation is cut short: never store it
    c.stats.forwards++;
    commit(
      c,
      part.map((x, k) => {
        const cl = classifyKeywords(res[k]!.text, rules);
        return {
          task: t.spec.id,
          variant: v.id,
          item: x.it.index,
          r: x.r,
          kind: "behavior-generate",
          score: cl.score,
          text: res[k]!.text,
          reason: cl.reason,
        };
      }),
    );
  }
}

/**
 * log p of each continuation token. The row holds prompt + (a sequence starting with) cont[..-1]: cont[k] is
 * predicted at the prompt's last slot + k. logits [B, T, V]; `first` = slot of the prompt's last token.
 */
function contLogprobs(
  logits: Float32Array,
  row: number,
  T: number,
  V: number,
  first: number,
  cont: readonly number[],
): number[] {
  return cont.map((id, k) => {
    const off = (row * T + first + k) * V;
    let m = -Infinity;
    for (let i = 0; i < V; i++) if (logits[off + i]! > m) m = logits[off + i]!;
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(logits[off + i]! - m);
    return Math.min(0, logits[off + id]! - m - Math.log(s));
  });
}

/**
 * Which row serves each continuation. Continuation j needs the row prompt + cont_j[..-1]; when that is a
 * prefix of another continuation's row (" No" and " Sure" both need the bare prompt; " I" is inside
 * " I'm sorry"), one row serves both (causal attention: earlier slots never see later tokens).
 * Returns the needed sequences kept as rows and, per continuation, the index of its row.
 */
export function mergeContinuationRows(needs: readonly (readonly number[])[]): {
  rows: number[];
  of: number[];
} {
  const order = needs.map((_, j) => j).sort((x, y) => needs[y]!.length - needs[x]!.length || x - y);
  const rows: number[] = [];
  const of = new Array<number>(needs.length);
  for (const j of order) {
    const n = needs[j]!;
    const k = rows.findIndex((r) => n.every((id, i) => needs[r]![i] === id));
    if (k >= 0) of[j] = k;
    else of[j] = rows.push(j) - 1;
  }
  return { rows, of };
}

async function runLogprob(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
): Promise<void> {
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const conts = [...(t.spec.aligned ?? DEFAULT_ALIGNED), ...(t.spec.misaligned ?? DEFAULT_MISALIGNED)];
  const nA = (t.spec.aligned ?? DEFAULT_ALIGNED).length;
  const contIds = conts.map((s) => tok.encode(s, { addSpecialTokens: false }));
  contIds.forEach((ids, i) => {
    if (ids.length === 0)
      throw new SteerlabError("bad_config", "a continuation encodes to no tokens", {
        field: `tasks.${t.spec.id}`,
        got: JSON.stringify(conts[i]),
      });
  });
  // The last continuation token is never an input whose prediction is scored.
  const needs = contIds.map((ci) => ci.slice(0, -1));
  const merged =
    c.opts.mergeRows === false
      ? { rows: needs.map((_, j) => j), of: needs.map((_, j) => j) }
      : mergeContinuationRows(needs);
  const perItem = merged.rows.length;
  // rows [items x merged rows]: prompt + the needed continuation prefix
  const prompts = chunk.map((it) => tok.encode(it.prompt));
  const rows = prompts.flatMap((p) => merged.rows.map((j) => [...p, ...needs[j]!]));
  const batch = padded(rows);
  const hidden = await prefix(c, batch, v.layers[0]!);
  // logits of every slot come back ([rows, T, V] floats): keep one forward's under ~256 MiB
  const cap = Math.floor(2 ** 26 / (batch.T * c.engine.config.vocabSize));
  for (const g of groups(coeffs, rows.length, Math.min(c.opts.maxRows ?? 32, cap))) {
    const rowCoeffs = g.flatMap((r) => rows.map(() => r));
    const logits = await steeredForward(c, batch, hidden, v, rowCoeffs, "all");
    const V = logits.length / (rowCoeffs.length * batch.T);
    const recs: SweepRecord[] = [];
    g.forEach((r, k) => {
      chunk.forEach((it, i) => {
        const lp = contIds.map((ci, j) => {
          const local = i * perItem + merged.of[j]!;
          const first = batch.T - rows[local]!.length + prompts[i]!.length - 1; // left padding + prompt's last slot
          return contLogprobs(logits, k * rows.length + local, batch.T, V, first, ci);
        });
        const s = scoreLogprobs(lp.slice(0, nA), lp.slice(nA));
        recs.push({
          task: t.spec.id,
          variant: v.id,
          item: it.index,
          r,
          kind: "behavior-logprob",
          score: s.score,
          margin: s.margin,
          soft: s.soft,
        });
      });
    });
    commit(c, recs);
  }
}

async function runMcq(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
  diag: boolean,
): Promise<void> {
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const letters = letterIds(tok);
  const batch = padded(chunk.map((it) => tok.encode(it.prompt)));
  const hidden = await prefix(c, batch, v.layers[0]!);
  const B = chunk.length;
  let base: Float32Array | null = null;
  // The baseline of A1/A3 is the r_e = 0 cell itself when it is still to do: put it first and reuse its rows.
  const todo = coeffs.includes(0) ? [0, ...coeffs.filter((r) => r !== 0)] : [...coeffs];
  if (diag && !todo.includes(0))
    base = await steeredForward(c, batch, hidden, v, new Array<number>(B).fill(0), "last");
  for (const g of groups(todo, B, c.opts.maxRows ?? 32)) {
    const logits = await steeredForward(
      c,
      batch,
      hidden,
      v,
      g.flatMap((r) => chunk.map(() => r)),
      "last",
    );
    const V = logits.length / (g.length * B);
    if (diag && !base) base = logits.slice(0, B * V); // rows of r_e = 0, [B, V]
    const recs: SweepRecord[] = [];
    g.forEach((r, k) => {
      chunk.forEach((it, i) => {
        const row = logits.subarray((k * B + i) * V, (k * B + i + 1) * V);
        const h = scoreHelpfulness(row, letters, it.correct!, { input: "logits" });
        const rec: SweepRecord = {
          task: t.spec.id,
          variant: v.id,
          item: it.index,
          r,
          kind: "mcq",
          score: h.correct ? 1 : 0,
          pFull: h.pFull,
          pRelative: h.pRelative,
          predicted: h.predicted,
        };
        if (base) {
          const b0 = base.subarray(i * V, (i + 1) * V);
          const ids = letters[it.correct!];
          const correctId = ids.reduce((a, id) => (b0[id]! > b0[a]! ? id : a), ids[0]!);
          rec.dNorm = deltaLogitNorm(b0, row);
          rec.a3 = a3Projections(b0, row, correctId, 10);
        }
        recs.push(rec);
      });
    });
    commit(c, recs);
  }
}

/** Run (or resume) a sweep into `store`. */
export async function runSweep(
  engine: Engine,
  tokenizer: Tokenizer | null,
  plan: SweepPlan,
  store: ResultStore,
  opts: RunOptions = {},
): Promise<SweepStats> {
  const bs = opts.batchSize ?? 8;
  if (!Number.isInteger(bs) || bs < 1)
    throw new SteerlabError("bad_input", "batchSize must be a positive integer", {
      field: "batchSize",
      got: String(bs),
    });
  if (plan.coeffs.length === 0) throw new SteerlabError("bad_input", "empty r_e grid", { field: "coeffs" });
  for (const v of plan.variants) {
    if (v.layers.length === 0)
      throw new SteerlabError("bad_input", `variant ${v.id} steers no layer`, { field: "layers" });
  }
  const total =
    plan.tasks.reduce((s, t) => s + t.items.length, 0) * plan.variants.length * plan.coeffs.length;
  const stats: SweepStats = { total, skipped: 0, computed: 0, forwards: 0, reused: false };
  const c: Ctx = {
    engine,
    tokenizer,
    store,
    opts,
    stats,
    reuseOk: opts.reuse ?? true,
    done: 0,
    progress(n) {
      this.done += n;
      opts.onProgress?.(this.done, total);
    },
  };
  for (const t of plan.tasks) {
    for (const v of plan.variants) {
      const sorted = { ...v, layers: [...v.layers].sort((a, b) => a - b) };
      for (let s = 0; s < t.items.length; s += bs) {
        const chunk = t.items.slice(s, s + bs);
        const idx = chunk.map((it) => it.index);
        const todo = missingCoeffs(c, t.spec.id, sorted, idx, plan.coeffs);
        const already =
          chunk.length * plan.coeffs.length -
          todo.reduce((n, r) => n + idx.filter((i) => !store.has(t.spec.id, v.id, i, r)).length, 0);
        stats.skipped += already;
        c.progress(already);
        if (todo.length === 0) continue;
        opts.signal?.throwIfAborted();
        if (t.spec.kind === "behavior-generate") await runGenerate(c, t, sorted, chunk, todo);
        else if (t.spec.kind === "behavior-logprob") await runLogprob(c, t, sorted, chunk, todo);
        else await runMcq(c, t, sorted, chunk, todo, plan.diagnostics ?? true);
      }
    }
  }
  return stats;
}
