/**
 * What the lab's data endpoints send (src/serve/lab/routes.ts) and the web front-end (web/) reads: one set of wire
 * types for both sides.
 */
import type { ModelConfig } from "../../model/config.js";
import type { SweepReport } from "../../report/types.js";
import type { LayerDiagnostics } from "../../steer/diagnostics.js";

/** A sweep run folder under the lab's runs directory. */
export interface RunSummary {
  /** Path relative to the runs directory, "/"-separated (e.g. "demo/base-sweep"). */
  id: string;
  model: string;
  created: string;
  records: number;
  /** results.jsonl last written (ISO time). */
  updated: string;
  /** The r_e grid of the config. */
  coeffs: number[];
}

/** Progress of a run: records stored and, per task series, how many r_e values have every item. */
export interface RunProgress {
  records: number;
  /** Records the config asks for when its item counts are known, else null. */
  expected: number | null;
  coeffs: number;
  updated: string;
  /** The store's file size, to tell a changed run from an unchanged one. */
  bytes: number;
}

export interface RunView {
  id: string;
  report: SweepReport;
  progress: RunProgress;
}

export interface VectorSummary {
  name: string;
  file: string;
  site: string;
  layers: number[];
  method: string;
  scale: "unit" | "raw";
  suggestedLayers: number[];
}

/** One layer of a vector: its direction's norm and the extraction diagnostics when the file holds them. */
export interface VectorLayerView {
  layer: number;
  norm: number;
  diagnostics: LayerDiagnostics | null;
}

export interface VectorView extends VectorSummary {
  hiddenSize: number;
  model: string | null;
  readPosition: string | null;
  dataset: { hash: string; size: number } | null;
  layerViews: VectorLayerView[];
  /** suggestLayers (steer/diagnostics.ts) over the stored diagnostics; empty without them. */
  suggestedByDiagnostics: number[];
}

/** One ONNX graph the browser engine runs: the model bytes and its external weight files. */
export interface GraphAsset {
  name: string;
  /** "attn.3", "mlp.3", "block.3" or "head". */
  url: string;
  files: { path: string; url: string; bytes: number }[];
}

export interface ModelManifest {
  name: string;
  config: ModelConfig;
  granularity: "site" | "block";
  graphs: GraphAsset[];
  tokenizerUrl: string;
  weightBytes: number;
}

export interface LabInfo {
  runs: boolean;
  vectors: boolean;
  /** The model's name when the lab serves one (in-browser playground), else null. */
  model: string | null;
  /** Blocks of the server's model, when known (layer specs like "-3..-1" resolve against it). */
  nLayers: number | null;
}
