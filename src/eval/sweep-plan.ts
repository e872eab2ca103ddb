/**
 * From a validated SweepConfig to a finished run folder: open the model, load vectors and tasks, build the
 * variants (vector x layer set), open (or resume) the result store and run. The CLI's `sweep` is this call;
 * `reportOfRun` turns a run folder into SweepData without the model.
 */

import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Engine } from "../model/engine.js";
import { parseLayers } from "../model/hooks.js";
import { type OpenedModel, openModel } from "../model/open.js";
import type { SweepData } from "../report/types.js";
import { lockRunDir, type RunLock } from "./run-lock.js";
import { ResultStore, type StoreDamage, type StoreRecovery } from "./store.js";
import {
  layersLabel,
  type RunOptions,
  runSweep,
  type SweepPlan,
  type SweepStats,
  type Variant,
} from "./sweep.js";
import { aggregateRecords } from "./sweep-aggregate.js";
import { planChunks, type Shard, shardChunks } from "./sweep-chunks.js";
import { resolvePath, runIdentity, type SweepConfig } from "./sweep-config.js";
import { loadSweepVector } from "./sweep-steer.js";
import { loadTask } from "./tasks.js";

/** Vectors, variants and loaded tasks of a config for an opened model. */
export async function planSweep(
  config: SweepConfig,
  /** Only its config is read (an engine, or a LoadedModel when nothing will run here). */
  engine: Pick<Engine, "config">,
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
  for (const t of config.tasks) tasks.push(await loadTask(t, base, tokenizer));
  return { tasks, variants, coeffs: config.coeffs, diagnostics: config.diagnostics ?? true };
}

export interface SweepDirOptions extends RunOptions {
  /** Run only this deterministic share of the chunks (`--shard k/N`); merge the N run folders afterwards. */
  shard?: Shard;
}

export interface SweepRunResult {
  dir: string;
  stats: SweepStats;
  data: SweepData;
  /** What opening the run folder found and repaired (stale lock, corrupt or duplicate lines, torn tail). */
  recovery: StoreRecovery;
}

/**
 * Open the model, run (or resume) the sweep into `dir`, and aggregate everything stored there. The folder is
 * locked before the model is loaded, so a second sweep on it is refused at once.
 */
export async function sweepToDir(
  config: SweepConfig,
  dir: string,
  opts: SweepDirOptions & { threads?: number } = {},
): Promise<SweepRunResult> {
  const lock = lockRunDir(dir);
  try {
    const m = await openModel(resolvePath(config.model, config.baseDir ?? process.cwd()), {
      backend: config.backend ?? "onnxruntime",
      ...(opts.threads ? { threads: opts.threads } : {}),
    });
    try {
      return await sweepWithModel(config, dir, m, { ...opts, lock });
    } finally {
      await m.engine.dispose();
    }
  } finally {
    lock.release();
  }
}

/** The same with a model the caller already opened (and disposes): no second load of the weights. */
export async function sweepWithModel(
  config: SweepConfig,
  dir: string,
  m: OpenedModel,
  opts: SweepDirOptions & { lock?: RunLock } = {},
): Promise<SweepRunResult> {
  const { lock, shard, ...runOpts } = opts;
  const identity = runIdentity(config, m.model.fingerprint);
  const store = ResultStore.open(dir, identity, lock ? { lock } : {});
  try {
    const plan = await planSweep(config, m.engine, m.tokenizer, m.model.fingerprint);
    const batchSize = opts.batchSize ?? config.batchSize ?? 8;
    const chunks = shard
      ? new Set(shardChunks(planChunks(plan, batchSize), shard).map((c) => c.key))
      : undefined;
    const stats = await runSweep(m.engine, m.tokenizer, plan, store, {
      ...runOpts,
      batchSize,
      ...(chunks ? { chunks } : {}),
    });
    return { dir, stats, data: reportDataOf(store.records(), identity), recovery: store.recovery };
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
  return readRunReport(dir).data;
}

/** The same, with what was wrong with the results file (corrupt lines skipped, duplicates counted once). */
export function readRunReport(dir: string): { data: SweepData; damage: StoreDamage } {
  const info = ResultStore.readInfo(dir);
  const { records, damage } = ResultStore.read(dir);
  return { data: reportDataOf(records, info.config as Record<string, unknown>), damage };
}
