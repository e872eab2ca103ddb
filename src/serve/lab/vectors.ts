/**
 * The vector directory as the lab shows it: steerlab vector files (.safetensors) and llama.cpp control vectors
 * (.gguf), read by the library's loader; per layer the direction's norm and the extraction diagnostics the file
 * holds, with the layer block steer/diagnostics.ts suggests from them. Names are file names without extension,
 * checked so that no name reaches outside the directory.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../../errors.js";
import type { ModelConfig } from "../../model/config.js";
import { suggestLayers } from "../../steer/diagnostics.js";
import type { SteeringVector } from "../../steer/vector.js";
import { loadVector } from "../../steer/vector-load.js";
import type { VectorSummary, VectorView } from "./types.js";

const EXTENSIONS = [".safetensors", ".gguf"];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function files(dir: string): { name: string; file: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((f) => {
      const ext = EXTENSIONS.find((e) => f.toLowerCase().endsWith(e));
      return ext && NAME.test(f) ? [{ name: f.slice(0, -ext.length), file: f }] : [];
    });
}

/** Load vector `name` from `dir` (a control vector is checked against `model` when given). */
export function loadNamedVector(
  dir: string,
  name: string,
  model?: { config: ModelConfig; fingerprint?: string },
): { vector: SteeringVector; file: string } {
  if (!NAME.test(name))
    throw new SteerlabError("bad_input", "invalid vector name", {
      field: "name",
      got: JSON.stringify(name.slice(0, 80)),
      expected: "letters, digits, '.', '_' or '-' (a file name without its extension)",
    });
  const f = files(dir).find((x) => x.name === name);
  if (!f)
    throw new SteerlabError("not_found", `no vector "${name}"`, {
      field: "name",
      expected: files(dir)
        .map((x) => x.name)
        .join(", "),
    });
  return { vector: loadVector(join(dir, f.file), model), file: f.file };
}

function summary(name: string, file: string, v: SteeringVector): VectorSummary {
  return {
    name,
    file,
    site: v.site,
    layers: [...v.directions.keys()].sort((a, b) => a - b),
    method: v.method,
    scale: v.scale,
    suggestedLayers: v.suggestedLayers,
  };
}

/** Every readable vector of the directory; unreadable files are reported by name, not skipped silently. */
export function listVectors(dir: string): {
  vectors: VectorSummary[];
  errors: { file: string; error: string }[];
} {
  const vectors: VectorSummary[] = [];
  const errors: { file: string; error: string }[] = [];
  for (const f of files(dir)) {
    try {
      vectors.push(summary(f.name, f.file, loadVector(join(dir, f.file))));
    } catch (e) {
      errors.push({ file: f.file, error: (e as Error).message });
    }
  }
  return { vectors, errors };
}

export function vectorView(dir: string, name: string): VectorView {
  const { vector: v, file } = loadNamedVector(dir, name);
  const layers = [...v.directions.keys()].sort((a, b) => a - b);
  const diags = layers.flatMap((l) => {
    const d = v.diagnostics.get(l);
    return d ? [d] : [];
  });
  return {
    ...summary(name, file, v),
    hiddenSize: v.hiddenSize,
    model: v.model ? `${v.model.arch} ${v.model.nLayers}x${v.model.hiddenSize}` : v.modelHint,
    readPosition: v.readPosition,
    dataset: v.dataset,
    layerViews: layers.map((l) => {
      const d = v.directions.get(l)!;
      let s = 0;
      for (const x of d) s += x * x;
      return { layer: l, norm: Math.sqrt(s), diagnostics: v.diagnostics.get(l) ?? null };
    }),
    suggestedByDiagnostics: diags.length ? suggestLayers(diags) : [],
  };
}
