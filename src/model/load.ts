/**
 * One entry point for every checkpoint format: a folder is a Hugging Face model, a `.gguf` file is GGUF.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { fileSource } from "../io/byte-source.js";
import { checkFiniteTensors, type FiniteOptions, nonFiniteWeights, weightProblem } from "../io/finite.js";
import { readGgufHeader } from "../io/gguf.js";
import { loadGgufModel } from "../io/gguf-model.js";
import { ggmlTypeName } from "../io/gguf-quant.js";
import { loadHfModel } from "../io/hf-model.js";
import { readSafetensorsHeader, safetensorsShards } from "../io/safetensors.js";
import type { LoadedModel, LoadOptions } from "./model.js";
import { LazyWeights } from "./weights.js";

/**
 * Load a checkpoint; its weights are checked for NaN/Inf (one error naming every bad tensor) unless allowed.
 * Weights stay lazy and quantized. `finiteCheck: "load"` (default) checks them here, one tensor at a time
 * (quantized ones by their block scales), which costs one extra pass over the file but never a second copy of
 * the model in memory. `"read"` checks each tensor when it is read instead (an engine build reads every tensor
 * once, so the file is read once): the error then comes from the first read of a bad tensor and names that one.
 */
export async function loadModel(
  path: string,
  opts: LoadOptions & FiniteOptions & { finiteCheck?: "load" | "read" } = {},
): Promise<LoadedModel> {
  const m = await loadAnyModel(path, opts);
  const fileName = (n: string) => {
    try {
      return (m.source.format === "hf" ? m.spec.hfName(n) : m.spec.ggufName(n)).split(":")[0]!;
    } catch {
      return n;
    }
  };
  if (opts.allowNonFinite) return m;
  if (opts.finiteCheck === "read" && m.weights instanceof LazyWeights) {
    m.weights.inspectReads((name, w) => {
      const p = weightProblem(name, w, fileName(name));
      if (p) throw nonFiniteWeights([p], path);
    });
  } else {
    checkFiniteTensors(m.weights, path, { ...opts, fileName });
  }
  return m;
}

/**
 * The storage types of a checkpoint's 2-D tensors (GGUF type names, safetensors dtypes) and their size as f32,
 * from the file headers only; null when the path is not a checkpoint (loadModel then says why).
 */
export function storedMatrixTypes(path: string): { types: Set<string>; f32Bytes: number } | null {
  const types = new Set<string>();
  let f32Bytes = 0;
  const add = (type: string, shape: readonly number[]) => {
    if (shape.length !== 2) return;
    types.add(type);
    f32Bytes += 4 * shape[0]! * shape[1]!;
  };
  try {
    if (statSync(path).isDirectory()) {
      for (const f of safetensorsShards(path).files) {
        const src = fileSource(join(path, f));
        try {
          for (const t of readSafetensorsHeader(src).tensors.values()) add(t.dtype, t.shape);
        } finally {
          src.close();
        }
      }
    } else if (path.toLowerCase().endsWith(".gguf")) {
      const src = fileSource(path);
      try {
        for (const t of readGgufHeader(src).tensors) add(ggmlTypeName(t.type), t.shape);
      } finally {
        src.close();
      }
    } else return null;
  } catch {
    return null;
  }
  return types.size ? { types, f32Bytes } : null;
}

async function loadAnyModel(path: string, opts: LoadOptions): Promise<LoadedModel> {
  if (!existsSync(path)) {
    throw new SteerlabError("not_found", `model path does not exist: ${path}`, {
      file: path,
      hint: "pass a Hugging Face model folder (config.json + *.safetensors) or a .gguf file",
    });
  }
  if (statSync(path).isDirectory()) {
    if (path.toLowerCase().replace(/\/+$/, "").endsWith(".gguf")) {
      throw new SteerlabError("bad_input", `model path is a directory, not a .gguf file: ${path}`, {
        file: path,
        expected: "a .gguf file (or a Hugging Face folder with config.json)",
        got: "a directory",
      });
    }
    return loadHfModel(path, opts);
  }
  if (path.toLowerCase().endsWith(".gguf")) return loadGgufModel(path, opts);
  throw new SteerlabError("unsupported", `cannot tell the model format of ${path}`, {
    file: path,
    expected: "a Hugging Face model folder or a .gguf file",
    hint: "for a single .safetensors file, pass the folder that holds it and its config.json",
  });
}
