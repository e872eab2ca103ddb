/**
 * The sweep's forward machinery, shared by its scorers: left-padded batches, the unsteered prefix below the
 * first steered layer (computed once per prompt chunk and resumed from with startLayer/inputHidden, when the
 * engine honours it), r_e values stacked as rows with per-row coefficients, and storing finished cells.
 */
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Batch, Engine, ForwardOptions, HookBinding } from "../model/engine.js";
import type { Judge } from "./score-judge.js";
import type { SweepRecord } from "./store.js";
import { rowSteeringHooks, type SweepVector } from "./sweep-steer.js";

export interface Variant {
  /** "<vector>@<layers>", the store's variant key. */
  id: string;
  vector: SweepVector;
  /** Steered blocks, ascending. */
  layers: readonly number[];
  /** coeffUnits relative: the residual norm the unit directions were scaled by (r_e = value x residNorm). */
  residNorm?: number;
}

/** Where a sweep's records go: a run folder's ResultStore, or the records of one queued chunk in memory. */
export interface RecordSink {
  has(task: string, variant: string, item: number, r: number): boolean;
  append(recs: readonly SweepRecord[]): void;
}

export interface RunOptions {
  /** Prompts per chunk (default 8). */
  batchSize?: number;
  /** Run only the chunks with these keys (sweep-chunks.ts); default every chunk of the plan. */
  chunks?: ReadonlySet<string>;
  /** Most rows in one forward when r_e values are stacked (default 32; at least one r_e per forward). */
  maxRows?: number;
  /** Compute resid_pre of the first steered layer once per chunk (default true). false: the naive sweep. */
  reuse?: boolean;
  /** MCQ: run a prefix common to a chunk's prompts (few-shot examples) once per r_e (default true). */
  sharePrefix?: boolean;
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
  /** Whether a common prompt prefix (few-shot examples) ran once per r_e and was forked to its prompts. */
  sharedPrefix: boolean;
}

export function requireTokenizerOf(tok: Tokenizer | null, task: string): Tokenizer {
  if (!tok)
    throw new SteerlabError("not_found", "this model has no tokenizer; sweep tasks need one", {
      field: `tasks.${task}`,
    });
  return tok;
}

export interface Ctx {
  engine: Engine;
  tokenizer: Tokenizer | null;
  store: RecordSink;
  opts: RunOptions;
  stats: SweepStats;
  reuseOk: boolean;
  done: number;
  progress(n: number): void;
  /** Judge models opened for this run (key: absolute path, or "" for the swept model itself). */
  judges: Map<string, Judge & { owned: boolean }>;
}

/** Left-pad rows into one batch. ids/mask [B][T]. */
export function padded(rows: readonly (readonly number[])[]): Batch & { T: number } {
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
      {
        logits: "last",
        startLayer: nLayers - 1,
        inputHidden: new Float32Array(hiddenSize).fill(Number.NaN),
        allowNonFinite: true, // the NaN logits are the answer here
      },
    );
    ok = out.logits.length > 0 && out.logits.every((x) => Number.isNaN(x));
  } catch {
    ok = false;
  }
  resumable.set(engine, ok);
  return ok;
}

/** resid_pre[L] of the batch ([B, T, D]), or null when there is nothing below L to save. */
export async function prefix(c: Ctx, batch: Batch, L: number): Promise<Float32Array | null> {
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
export async function steeredForward(
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

/** Groups of r_e values so that rows x group <= maxRows (at least one value per group). */
export function groups(coeffs: readonly number[], rows: number, maxRows: number): number[][] {
  const g = Math.max(1, Math.floor(maxRows / rows));
  const out: number[][] = [];
  for (let i = 0; i < coeffs.length; i += g) out.push(coeffs.slice(i, i + g));
  return out;
}

/** Store the records of cells still missing; count progress for every cell of the chunk at these r_e. */
export function commit(c: Ctx, recs: readonly SweepRecord[]): void {
  const fresh = recs.filter((r) => !c.store.has(r.task, r.variant, r.item, r.r));
  c.store.append(fresh);
  c.stats.computed += fresh.length;
  c.progress(fresh.length);
}
