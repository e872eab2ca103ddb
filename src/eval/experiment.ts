/**
 * The paper's whole experiment on one or more models (Wolf et al., DESIGN.md section 1), as one call:
 *   for each model: extract the behaviour vector with repe-pca from contrastive pairs at the paper's layers
 *   (scaled to the model's depth) -> sweep r_e over behaviour and helpfulness tasks (resumable run folder)
 *   then: every model's curves in one report with fits, diagnostics and the efficient regime of the first model.
 * `steerlab demo` runs it on the shipped demo models; any other set of models and task files works the same.
 */

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import type { Backend } from "../model/backends.js";
import { parseLayers } from "../model/hooks.js";
import { openModel } from "../model/open.js";
import { buildReport } from "../report/build.js";
import type { Diagnostics, SweepData, SweepReport, TaskSeries } from "../report/types.js";
import { type WrittenReport, writeReport } from "../report/writers.js";
import { extractFromModel } from "../steer/extract-model.js";
import { loadDataset } from "../steer/pairs.js";
import { parseReadPosition } from "../steer/read.js";
import { saveVector } from "../steer/vector-load.js";
import type { CurveFitOptions } from "../theory/curves.js";
import type { SweepStats } from "./sweep.js";
import { parseSweepConfig } from "./sweep-config.js";
import { planTasks, type SweepDirOptions, sweepWithModel } from "./sweep-plan.js";

export interface ExperimentModel {
  /** Short name used in task ids and file names, e.g. "base". */
  name: string;
  path: string;
  /**
   * Per-model changes to tasks by id, merged over the shared spec: e.g. the paper's per-model classifier
   * default ({ "bias": { "rules": { ..., "fallback": "misaligned" } } }) or a chat flag.
   */
  tasks?: Record<string, Record<string, unknown>>;
}

export interface ExperimentConfig {
  title: string;
  models: ExperimentModel[];
  /** Contrastive pairs (JSONL) the vector is extracted from, per model. */
  pairs: string;
  /** Extraction layers: a layer spec, or "paper" (the paper's depth fraction, see paperLayers). */
  layers?: string;
  read?: string;
  /**
   * repe-pca's in-pair order shuffle: true / a seed (default: on, seed 1, as RepE's datasets), or false to keep
   * each pair's order (the paper's fairness vectors were read that way).
   */
  shuffle?: boolean | number;
  /** r_e grid: "start:stop:step" or a list. */
  coeffs: string | number[];
  /** "relative": grid values are multiples of each model's residual norm at the steered layers (sweep-config). */
  coeffUnits?: "absolute" | "relative";
  /** Sweep tasks (sweep-config task specs). */
  tasks: unknown[];
  /** Task ids (of the first model) for the efficient regime. */
  alignmentTask: string;
  helpfulnessTask: string;
  backend?: Backend;
  batchSize?: number;
  /** Helpfulness loss allowed by the regime's budget rule (default 0.02). */
  budget?: number;
  /** Weight of helpfulness loss against alignment gain (default 1). */
  lambda?: number;
  /** Fit ranges in r_e units (the defaults suit the paper's grid; scale them with the grid). */
  fit?: CurveFitOptions;
  /** Shown in the report: why this grid and these layers (the numbers are the model's, not the paper's). */
  notes?: string;
}

export interface ModelRun {
  model: ExperimentModel;
  vectorFile: string;
  layers: number[];
  runDir: string;
  stats: SweepStats;
  data: SweepData;
}

export interface ExperimentResult {
  runs: ModelRun[];
  report: SweepReport;
  files: WrittenReport;
}

/**
 * The paper's layer choice scaled to a model of n blocks by its depth fraction. The paper steers blocks
 * -32..-25 of Llama-2-13B's 40 (0-based blocks 8..15) and -22..-18 of a 32-block 7B model (blocks 10..14);
 * a model of n blocks gets n - round(32 n / 40) .. n - round(25 n / 40) when n >= 36, else the 7B fractions
 * n - round(22 n / 32) .. n - round(18 n / 32).
 */
export function paperLayers(n: number): number[] {
  const [from, to, of] = n >= 36 ? [32, 25, 40] : [22, 18, 32];
  const a = Math.max(0, n - Math.round((from * n) / of));
  const b = Math.min(n - 1, Math.max(a, n - Math.round((to * n) / of)));
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** Prefix every series id and title with the model's name, so several models share one report. */
function prefixed(d: SweepData, name: string): TaskSeries[] {
  return d.tasks.map((t) => ({ ...t, id: `${name}/${t.id}`, title: `${name}: ${t.title}` }));
}

export async function runExperiment(
  c: ExperimentConfig,
  outDir: string,
  opts: {
    threads?: number;
    onProgress?: (stage: string, done: number, total: number) => void;
    /** What opening each model's run folder found and repaired (a stale lock taken over), when it is opened. */
    onRecovery?: SweepDirOptions["onRecovery"];
  } = {},
): Promise<ExperimentResult> {
  if (c.models.length === 0) throw new SteerlabError("bad_config", "an experiment needs at least one model");
  const data = loadDataset(c.pairs);
  const runs: ModelRun[] = [];
  for (const model of c.models) {
    if (!existsSync(model.path)) {
      throw new SteerlabError("not_found", `model ${model.name} not found`, { file: model.path });
    }
    // 1. The vector, from this model's own activations (as the paper extracts per model); 2. the sweep, in
    // its own resumable run folder, on the same opened model.
    const m = await openModel(model.path, { backend: c.backend, threads: opts.threads });
    const vectorFile = join(outDir, `${model.name}-vector.safetensors`);
    const runDir = join(outDir, `${model.name}-sweep`);
    let layers: number[];
    let r: Awaited<ReturnType<typeof sweepWithModel>>;
    try {
      const n = m.model.config.nLayers;
      layers = !c.layers || c.layers === "paper" ? paperLayers(n) : parseLayers(c.layers, n);
      const config = parseSweepConfig(
        {
          model: model.path,
          backend: c.backend,
          vectors: [{ name: "vector", source: vectorFile }],
          coeffs: c.coeffs,
          ...(c.coeffUnits ? { coeffUnits: c.coeffUnits } : {}),
          tasks: c.tasks.map((t) => {
            const id = (t as { id?: string }).id;
            return id && model.tasks?.[id] ? { ...(t as object), ...model.tasks[id] } : t;
          }),
          ...(c.batchSize ? { batchSize: c.batchSize } : {}),
        },
        outDir,
        `experiment ${model.name}`,
      );
      // The tasks are checked against this model (context lengths) before anything is extracted or written.
      await planTasks(config, m.engine, m.tokenizer);
      mkdirSync(outDir, { recursive: true });
      const v = await extractFromModel(m, data, {
        method: "repe-pca",
        layers,
        read: parseReadPosition(c.read ?? "last"),
        shufflePairs: c.shuffle === false ? false : typeof c.shuffle === "number" ? c.shuffle : 1,
        onProgress: (d, t) => opts.onProgress?.(`${model.name}: extract`, d, t),
      });
      saveVector(vectorFile, v);
      r = await sweepWithModel(config, runDir, m, {
        onProgress: (d, t) => opts.onProgress?.(`${model.name}: sweep`, d, t),
        ...(opts.onRecovery ? { onRecovery: opts.onRecovery } : {}),
      });
    } finally {
      await m.engine.dispose();
    }
    runs.push({ model, vectorFile, layers, runDir, stats: r.stats, data: r.data });
  }
  // 3. One report: every model's series; diagnostics and the regime of the first model.
  const first = runs[0]!;
  const combined: SweepData = {
    title: c.title,
    metadata: {
      models: runs.map((r) => `${r.model.name} (${r.model.path})`).join("; "),
      vector: `repe-pca from ${c.pairs}, layers ${runs.map((r) => `${r.model.name}: ${r.layers.join(",")}`).join("; ")}`,
      ...Object.fromEntries(
        Object.entries(first.data.metadata).filter(([k]) => k === "coeffs" || k === "tasks"),
      ),
      // relative r_e: each model's unit (the report draws each model's panels with its own factor)
      ...Object.fromEntries(
        runs.flatMap((r) =>
          typeof r.data.metadata.residNorm === "number"
            ? [
                [`residNorm ${r.model.name}`, r.data.metadata.residNorm],
                [`r_e units ${r.model.name}`, String(r.data.metadata["r_e units"])],
              ]
            : [],
        ),
      ),
      ...(c.notes ? { notes: c.notes } : {}),
    },
    rGrid: [...new Set(runs.flatMap((r) => r.data.rGrid))].sort((a, b) => a - b),
    tasks: runs.flatMap((r) => prefixed(r.data, r.model.name)),
    ...(first.data.diagnostics ? { diagnostics: first.data.diagnostics as Diagnostics } : {}),
  };
  const report = buildReport(combined, {
    ...(c.fit ? { fit: c.fit } : {}),
    regime: {
      alignmentTask: `${first.model.name}/${c.alignmentTask}`,
      helpfulnessTask: `${first.model.name}/${c.helpfulnessTask}`,
      budget: c.budget ?? 0.02,
      lambda: c.lambda ?? 1,
    },
  });
  const files = await writeReport(report, outDir);
  return { runs, report, files };
}
