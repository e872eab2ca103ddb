/**
 * The sweep runner: every (task, variant, item, r_e) cell of the grid scored once and appended to a
 * ResultStore, so an interrupted sweep resumes where it stopped. A variant is one vector on one layer set.
 *
 * Work goes by prompt chunks (batchSize prompts of one task and variant), scored by sweep-score.ts.
 * For the two scorers without generation the forward below the first steered layer L does not depend on r_e:
 * resid_pre[L] of the chunk is computed once (stopAfterLayer L-1) and every r_e resumes from it
 * (startLayer/inputHidden), with several r_e values stacked as rows of one forward. MCQ chunks whose prompts
 * share a long prefix (few-shot examples) instead run that prefix once per r_e and fork its cache to every
 * prompt (sweep-shared.ts), when that costs less.
 */
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Engine } from "../model/engine.js";
import { planChunks, type SweepChunk } from "./sweep-chunks.js";
import type { Ctx, RecordSink, RunOptions, SweepStats, Variant } from "./sweep-forward.js";
import { closeJudges, runCloze, runGenerate, runLogprob, runMcq } from "./sweep-score.js";
import type { LoadedTask } from "./tasks.js";

export type { RecordSink, RunOptions, SweepStats, Variant } from "./sweep-forward.js";
export { mergeContinuationRows } from "./sweep-score.js";

export interface SweepPlan {
  tasks: readonly LoadedTask[];
  variants: readonly Variant[];
  coeffs: readonly number[];
  /** A1/A3 on mcq tasks (needs one unsteered forward per chunk). Default true. */
  diagnostics?: boolean;
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

/** Run (or resume) a sweep into `store` (every chunk of the plan, or those named by opts.chunks). */
export async function runSweep(
  engine: Engine,
  tokenizer: Tokenizer | null,
  plan: SweepPlan,
  store: RecordSink,
  opts: RunOptions = {},
): Promise<SweepStats> {
  const chunks = planChunks(plan, opts.batchSize ?? 8).filter(
    (ch) => !opts.chunks || opts.chunks.has(ch.key),
  );
  if (plan.coeffs.length === 0) throw new SteerlabError("bad_input", "empty r_e grid", { field: "coeffs" });
  for (const v of plan.variants) {
    if (v.layers.length === 0)
      throw new SteerlabError("bad_input", `variant ${v.id} steers no layer`, { field: "layers" });
  }
  const total = chunks.reduce((s, ch) => s + ch.items.length, 0) * plan.coeffs.length;
  const stats: SweepStats = {
    total,
    skipped: 0,
    computed: 0,
    forwards: 0,
    reused: false,
    sharedPrefix: false,
  };
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
    judges: new Map(),
  };
  try {
    await runChunks(c, plan, chunks);
  } finally {
    await closeJudges(c);
  }
  return stats;
}

async function runChunks(c: Ctx, plan: SweepPlan, chunks: readonly SweepChunk[]): Promise<void> {
  const { store, stats, opts } = c;
  const tasks = new Map(plan.tasks.map((t) => [t.spec.id, t]));
  const variants = new Map(
    plan.variants.map((v) => [v.id, { ...v, layers: [...v.layers].sort((a, b) => a - b) }]),
  );
  for (const ch of chunks) {
    const t = tasks.get(ch.task)!;
    const v = variants.get(ch.variant)!;
    const chunk = t.items.slice(ch.start, ch.end);
    const todo = missingCoeffs(c, t.spec.id, v, ch.items, plan.coeffs);
    const already =
      chunk.length * plan.coeffs.length -
      todo.reduce((n, r) => n + ch.items.filter((i) => !store.has(t.spec.id, v.id, i, r)).length, 0);
    stats.skipped += already;
    c.progress(already);
    if (todo.length === 0) continue;
    opts.signal?.throwIfAborted();
    if (t.spec.kind === "behavior-generate") await runGenerate(c, t, v, chunk, todo);
    else if (t.spec.kind === "behavior-logprob") await runLogprob(c, t, v, chunk, todo);
    else if (t.spec.kind === "cloze") await runCloze(c, t, v, chunk, todo);
    else await runMcq(c, t, v, chunk, todo, plan.diagnostics ?? true);
  }
}
