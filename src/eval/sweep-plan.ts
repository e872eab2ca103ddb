/**
 * From a validated SweepConfig to a finished run folder: open the model, load vectors and tasks, build the
 * variants (vector x layer set), open (or resume) the result store and run. The CLI's `sweep` is this call;
 * `reportOfRun` turns a run folder into SweepData without the model.
 */

import { existsSync } from "node:fs";
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Engine } from "../model/engine.js";
import { parseLayers } from "../model/hooks.js";
import { type OpenedModel, openModel } from "../model/open.js";
import type { SweepData } from "../report/types.js";
import { collectActivations } from "../steer/collect.js";
import { gridOf, gridWarnings, writeRunGrid } from "./run-grid.js";
import { lockRunDir, type RunLock } from "./run-lock.js";
import { readRunUnits, writeRunUnits } from "./run-units.js";
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
import { configFieldError, resolvePath, runIdentity, type SweepConfig } from "./sweep-config.js";
import { loadSweepVector } from "./sweep-steer.js";
import { DEFAULT_ALIGNED, DEFAULT_MISALIGNED, type LoadedTask, loadTask } from "./tasks.js";

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
    const sets = config.layers?.map((s, i) => layerSet(config, i, s, nLayers)) ?? [
      [...vector.directions.keys()].sort((a, b) => a - b),
    ];
    for (const layers of sets) variants.push({ id: `${vs.name}@${layersLabel(layers)}`, vector, layers });
  }
  const tasks = await planTasks(config, engine, tokenizer);
  if (config.coeffUnits === "relative") {
    if (!tokenizer)
      throw new SteerlabError("bad_config", "coeffUnits: relative needs a tokenizer to read the prompts", {
        field: "coeffUnits",
      });
    // The unit is measured with forward passes: a planner without an engine (the queue coordinator) has none.
    if (!isEngine(engine))
      throw new SteerlabError("bad_config", "coeffUnits: relative is not supported with --queue yet", {
        field: "coeffUnits",
        hint: "run the sweep in one process or with --shard k/N and steerlab merge, or use absolute units",
      });
    // a grid value c steers with c x ||h||: scale each variant's unit directions by its residual norm
    for (let i = 0; i < variants.length; i++) {
      const v = variants[i]!;
      const norm = await residualNorm(engine, tokenizer, tasks, v);
      const directions = new Map(
        [...v.vector.directions].map(([l, d]) => [l, Float32Array.from(d, (x) => x * norm)]),
      );
      variants[i] = { ...v, vector: { ...v.vector, directions }, residNorm: norm };
    }
  }
  return { tasks, variants, coeffs: config.coeffs, diagnostics: config.diagnostics ?? true };
}

/** The config's tasks, loaded, each prompt checked to fit the model's context (no vector needed). */
export async function planTasks(
  config: SweepConfig,
  engine: Pick<Engine, "config">,
  tokenizer: Tokenizer | null,
): Promise<LoadedTask[]> {
  const base = config.baseDir ?? process.cwd();
  const tasks = [];
  for (const [i, t] of config.tasks.entries()) {
    const lt = await loadTask(t, base, tokenizer);
    try {
      if (tokenizer) checkContext(lt, tokenizer, engine.config.maxPositions);
    } catch (e) {
      throw configFieldError(e, config, `tasks[${i}]${t.shots ? ".shots" : ""}`);
    }
    tasks.push(lt);
  }
  return tasks;
}

/** Layer set i of the config, resolved against the model's depth (errors name the config's field). */
function layerSet(config: SweepConfig, i: number, spec: string, nLayers: number): number[] {
  try {
    return parseLayers(spec, nLayers);
  } catch (e) {
    throw configFieldError(e, config, `layers[${i}]`);
  }
}

function isEngine(e: Pick<Engine, "config">): e is Engine {
  return typeof (e as Partial<Engine>).forward === "function";
}

/**
 * Mean ||h|| at the variant's site and steered layers, at the last token of up to 16 unsteered prompts per
 * task: the unit of r_e under coeffUnits: relative.
 */
export async function residualNorm(
  engine: Engine,
  tokenizer: Tokenizer,
  tasks: readonly LoadedTask[],
  v: Variant,
): Promise<number> {
  const seqs = tasks.flatMap((t) => t.items.slice(0, 16).map((it) => tokenizer.encode(it.prompt)));
  const acts = await collectActivations(engine, seqs, {
    points: v.layers.map((layer) => ({ layer, site: v.vector.site })),
    read: { kind: "last" },
  });
  const D = engine.config.hiddenSize;
  let sum = 0;
  let n = 0;
  for (const rows of acts.values())
    for (let i = 0; i < rows.length / D; i++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += rows[i * D + j]! ** 2;
      sum += Math.sqrt(s);
      n++;
    }
  return sum / n;
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

export interface SweepDirOptions extends RunOptions {
  /** Run only this deterministic share of the chunks (`--shard k/N`); merge the N run folders afterwards. */
  shard?: Shard;
  /**
   * Called as soon as the run folder is open, with what opening it found and repaired (a stale lock taken
   * over, corrupt lines): the caller warns now, not only after the sweep, which a kill may never reach.
   */
  onRecovery?: (recovery: StoreRecovery, dir: string) => void;
}

export interface SweepRunResult {
  dir: string;
  stats: SweepStats;
  data: SweepData;
  /** What opening the run folder found and repaired (stale lock, corrupt or duplicate lines, torn tail). */
  recovery: StoreRecovery;
}

/**
 * Open the model, run (or resume) the sweep into `dir`, and aggregate everything stored there. An existing
 * folder is locked before the model is loaded, so a second sweep on it is refused at once; a new folder is
 * created only once the config has been planned against the model, so a refused config leaves nothing behind.
 */
export async function sweepToDir(
  config: SweepConfig,
  dir: string,
  opts: SweepDirOptions & { threads?: number } = {},
): Promise<SweepRunResult> {
  const lock = existsSync(dir) ? lockRunDir(dir) : undefined;
  try {
    const m = await openModel(resolvePath(config.model, config.baseDir ?? process.cwd()), {
      backend: config.backend ?? "onnxruntime",
      ...(opts.threads ? { threads: opts.threads } : {}),
    });
    try {
      return await sweepWithModel(config, dir, m, { ...opts, ...(lock ? { lock } : {}) });
    } finally {
      await m.engine.dispose();
    }
  } finally {
    lock?.release();
  }
}

/**
 * The same with a model the caller already opened (and disposes): no second load of the weights. Every
 * planning check (layer sets, tasks, context lengths, vectors) runs before anything is written to `dir`.
 */
export async function sweepWithModel(
  config: SweepConfig,
  dir: string,
  m: OpenedModel,
  opts: SweepDirOptions & { lock?: RunLock } = {},
): Promise<SweepRunResult> {
  const { lock, shard, onRecovery, ...runOpts } = opts;
  const plan = await planSweep(config, m.engine, m.tokenizer, m.model.fingerprint);
  const identity = runIdentity(config, m.model.fingerprint);
  const store = ResultStore.open(dir, identity, lock ? { lock } : {});
  try {
    onRecovery?.(store.recovery, dir);
    if (config.coeffUnits === "relative")
      writeRunUnits(dir, Object.fromEntries(plan.variants.map((v) => [v.id, v.residNorm!])));
    const batchSize = opts.batchSize ?? config.batchSize ?? 8;
    writeRunGrid(dir, gridOf(plan, batchSize, shard));
    const chunks = shard
      ? new Set(shardChunks(planChunks(plan, batchSize), shard).map((c) => c.key))
      : undefined;
    const stats = await runSweep(m.engine, m.tokenizer, plan, store, {
      ...runOpts,
      batchSize,
      ...(chunks ? { chunks } : {}),
    });
    return {
      dir,
      stats,
      data: reportDataOf(store.records(), identity, readRunUnits(dir)),
      recovery: store.recovery,
    };
  } finally {
    store.close();
  }
}

function reportDataOf(
  records: Parameters<typeof aggregateRecords>[0],
  identity: Record<string, unknown>,
  residNorm?: Record<string, number>,
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
      ...(residNorm
        ? {
            "r_e units": `relative: r_e / ||h||, ||h|| = mean residual norm at the steered layers (${Object.entries(
              residNorm,
            )
              .map(([k, n]) => `${k}: ${n.toPrecision(4)}`)
              .join("; ")}); absolute r_e = value x ||h||`,
            ...(Object.keys(residNorm).length === 1 ? { residNorm: Object.values(residNorm)[0]! } : {}),
          }
        : {}),
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
  const data = reportDataOf(records, info.config as Record<string, unknown>, readRunUnits(dir));
  const warnings = gridWarnings(dir, records);
  return { data: warnings.length ? { ...data, warnings } : data, damage };
}
