/**
 * A report from the paper's published curves (../shared/paper-data, README there): one model and one
 * steering vector give a behaviour task and three MMLU subjects (full-vocabulary and A-D curves each), so
 * `steerlab report` can redraw the published shapes with steerlab's fits and regime.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { type Curve, loadCurve, PAPER_TANH_RANGE } from "../theory/curves.js";
import { type BuildOptions, buildReport } from "./build.js";
import type { MetricPoint, SweepReport, TaskSeries } from "./types.js";

export const PAPER_MODELS = ["Llama-2-13b", "Llama-2-13b-chat"] as const;
export const PAPER_VECTORS = ["harmfulness", "fairness"] as const;
export const PAPER_SUBJECTS = [
  "international_law",
  "high_school_computer_science",
  "medical_genetics",
] as const;

export interface PaperOptions {
  model?: (typeof PAPER_MODELS)[number];
  vector?: (typeof PAPER_VECTORS)[number];
  build?: BuildOptions;
}

/**
 * Points from a curve whose std is numpy's population std over n prompts: the standard error of the mean is
 * std / sqrt(n - 1) (= sample std / sqrt(n)).
 */
function points(c: Curve, n: number): MetricPoint[] {
  return c.r.map((r, i) => {
    const std = c.std ? c.std[i]! : Number.NaN;
    return { r, mean: c.value[i]!, std, se: std / Math.sqrt(n - 1), n };
  });
}

async function curvesOf(path: string): Promise<Curve[]> {
  if (!existsSync(path))
    throw new SteerlabError("not_found", "paper data file missing", {
      file: path,
      hint: "pass the folder that holds the paper's JSON files (../shared/paper-data)",
    });
  return loadCurve(path);
}

/** Build the report of one (model, vector) pair of the paper's files. */
export async function reportFromPaperData(dir: string, o: PaperOptions = {}): Promise<SweepReport> {
  const model = o.model ?? "Llama-2-13b";
  const vector = o.vector ?? "harmfulness";
  const behavior = vector === "harmfulness" ? "harmful" : "bias";
  const nBehavior = vector === "harmfulness" ? 100 : 16;
  const tasks: TaskSeries[] = [];
  const [b] = await curvesOf(join(dir, `behavior_${behavior}_${model}_${vector}.json`));
  tasks.push({
    id: behavior,
    title: behavior === "harmful" ? "harmful instructions (refusal)" : "stereotype statements (disagree)",
    kind: "behavior",
    points: points(b!, nBehavior),
  });
  for (const s of PAPER_SUBJECTS) {
    const cs = await curvesOf(join(dir, `${s}_${model}_${vector}.json`));
    for (const c of cs) {
      const ad = c.kind === "helpfulness-ad";
      tasks.push({
        id: `${s}${ad ? "-ad" : ""}`,
        title: `${s}${ad ? " (A-D)" : ""}`,
        kind: c.kind,
        points: points(c, 100),
      });
    }
  }
  const rGrid = [...new Set(tasks.flatMap((t) => t.points.map((p) => p.r)))].sort((a, b) => a - b);
  return buildReport(
    {
      title: `Paper curves: ${model}, ${vector} vector (Wolf et al., arXiv:2401.16332)`,
      metadata: {
        source: "published result files (authors' repository, raw_json_files_to_produce_all_figures)",
        model,
        vector,
        behaviour_prompts: nBehavior,
        mmlu_questions_per_subject: 100,
        tanh_fit_range: `[${PAPER_TANH_RANGE.join(", ")}]`,
        note: "std in the files is the population std over prompts; se = std / sqrt(n - 1)",
      },
      rGrid,
      tasks,
    },
    { ...o.build, fit: { tanhRange: PAPER_TANH_RANGE, ...o.build?.fit } },
  );
}
