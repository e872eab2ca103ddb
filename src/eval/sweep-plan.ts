/**
 * From a validated SweepConfig to a finished run folder: open the model, load vectors and tasks, build the
 * variants (vector x layer set), open (or resume) the result store and run. The CLI's `sweep` is this call;
 * `reportOfRun` turns a run folder into SweepData without the model.
 */

import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Engine } from "../model/engine.js";
import { parseLayers } from "../model/hooks.js";
import { type OpenedModel, openModel } from "../model/open.js";
import type { SweepData } from "../report/types.js";
import { ResultStore } from "./store.js";
import {
  layersLabel,
  type RunOptions,
  runSweep,
  type SweepPlan,
  type SweepStats,
  type Variant,
} from "./sweep.js";
import { aggregateRecords } from "./sweep-aggregate.js";
import { resolvePath, runIdentity, type SweepConfig } from "./sweep-config.js";
import { loadSweepVector } from "./sweep-steer.js";
import { DEFAULT_ALIGNED, DEFAULT_MISALIGNED, type LoadedTask, loadTask } from "./tasks.js";

/** Vectors, variants and loaded tasks of a config for an opened model. */
export async function planSweep(
  config: SweepConfig,
  engine: Engine,
  tokenizer: Tokenizer | null,
  /** LoadedModel.fingerprint: checked against the vector file's model, when it records one. */
  fingerprint?: string,
): Promise<SweepPlan> {
  const base = config.baseDir ?? process.cwd();
  const { nLayers } = engine.config;
  const variants: Variant[] = [];
  for (const vs of config.vectors) {
    const src = vs.source.startsWith("random:") ? vs.source : resolvePath(vs.source, base);
    const vector = loadSweepVector(src, vs.name, {
      config: engine.config,
      ...(fingerprint ? { fingerprint } : {}),
    });
    const sets = config.layers?.map((s) => parseLayers(s, nLayers)) ?? [
      [...vector.directions.keys()].sort((a, b) => a - b),
    ];
    for (const layers of sets) variants.push({ id: `${vs.name}@${layersLabel(layers)}`, vector, layers });
  }
  const tasks = [];
  for (const t of config.tasks) {
    const lt = await loadTask(t, base, tokenizer);
    if (tokenizer) checkContext(lt, tokenizer, engine.config.maxPositions);
    tasks.push(lt);
  }
  return { tasks, variants, coeffs: config.coeffs, diagnostics: config.diagnostics ?? true };
}

/**
 * Every prompt of a task must fit the model's context with room for its answer (a continuation, or at least
 * one generated token): checked when the sweep is planned, not found part-way through it.
 */
export function checkContext(t: LoadedTask, tokenizer: Tokenizer, maxPositions: number): void {
  const extra =
    t.spec.kind === "behavior-logprob"
      ? Math.max(
          ...[...(t.spec.aligned ?? DEFAULT_ALIGNED), ...(t.spec.misaligned ?? DEFAULT_MISALIGNED)].map(
            (c) => tokenizer.encode(c, { addSpecialTokens: false }).length,
          ),
        )
      : 1;
  const over = t.items
    .map((it) => ({ index: it.index, n: tokenizer.encode(it.prompt).length }))
    .filter((x) => x.n + extra > maxPositions);
  if (over.length === 0) return;
  const worst = over.reduce((a, b) => (b.n > a.n ? b : a));
  const shots = t.spec.shots ?? 0;
  throw new SteerlabError(
    "bad_config",
    `task ${t.spec.id}: ${over.length} of ${t.items.length} prompts do not fit the model's context of ${maxPositions} tokens`,
    {
      field: `tasks.${t.spec.id}${shots ? ".shots" : ""}`,
      got: `item ${worst.index}: ${worst.n} prompt tokens + ${extra} for the answer`,
      hint: shots
        ? `lower shots (now ${shots}: every prompt carries that many solved examples), or use shorter questions`
        : "use shorter prompts or a model with a longer context",
    },
  );
}

export interface SweepRunResult {
  dir: string;
  stats: SweepStats;
  data: SweepData;
}

/** Open the model, run (or resume) the sweep into `dir`, and aggregate everything stored there. */
export async function sweepToDir(
  config: SweepConfig,
  dir: string,
  opts: RunOptions & { threads?: number } = {},
): Promise<SweepRunResult> {
  const m = await openModel(resolvePath(config.model, config.baseDir ?? process.cwd()), {
    backend: config.backend ?? "onnxruntime",
    ...(opts.threads ? { threads: opts.threads } : {}),
  });
  try {
    return await sweepWithModel(config, dir, m, opts);
  } finally {
    await m.engine.dispose();
  }
}

/** The same with a model the caller already opened (and disposes): no second load of the weights. */
export async function sweepWithModel(
  config: SweepConfig,
  dir: string,
  m: OpenedModel,
  opts: RunOptions = {},
): Promise<SweepRunResult> {
  const identity = runIdentity(config);
  const store = ResultStore.open(dir, identity);
  try {
    const plan = await planSweep(config, m.engine, m.tokenizer, m.model.fingerprint);
    const stats = await runSweep(m.engine, m.tokenizer, plan, store, {
      batchSize: config.batchSize ?? 8,
      ...opts,
    });
    return { dir, stats, data: reportDataOf(store.records(), identity) };
  } finally {
    store.close();
  }
}

function reportDataOf(
  records: Parameters<typeof aggregateRecords>[0],
  identity: Record<string, unknown>,
): SweepData {
  const tasks = (identity.tasks as { id: string; kind: string; data: string }[] | undefined) ?? [];
  const coeffs = (identity.coeffs as number[] | undefined) ?? [];
  return aggregateRecords(records, {
    title: `Sweep of ${String(identity.model).split("/").pop()}`,
    titles: Object.fromEntries(tasks.map((t) => [t.id, `${t.id} (${t.kind})`])),
    metadata: {
      model: String(identity.model),
      backend: String(identity.backend),
      vectors: ((identity.vectors as { name: string }[] | undefined) ?? []).map((v) => v.name).join(", "),
      layers: identity.layers ? (identity.layers as string[]).join(" | ") : "the vector's layers",
      coeffs: coeffs.length ? `${coeffs[0]}..${coeffs[coeffs.length - 1]} (${coeffs.length} values)` : "",
      tasks: tasks.map((t) => `${t.id}: ${t.kind} on ${t.data.split("/").pop()}`).join("; "),
    },
  });
}

/** SweepData of a run folder (records + run.json), no model needed. */
export function reportOfRun(dir: string): SweepData {
  const info = ResultStore.readInfo(dir);
  return reportDataOf(ResultStore.readRecords(dir), info.config as Record<string, unknown>);
}
