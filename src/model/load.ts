/**
 * One entry point for every checkpoint format: a folder is a Hugging Face model, a `.gguf` file is GGUF.
 */
import { existsSync, statSync } from "node:fs";
import { SteerlabError } from "../errors.js";
import { checkFiniteTensors, type FiniteOptions } from "../io/finite.js";
import { loadGgufModel } from "../io/gguf-model.js";
import { loadHfModel } from "../io/hf-model.js";
import type { LoadedModel } from "./model.js";

export type LoadOptions = FiniteOptions;

/** Load a checkpoint; its weights are checked for NaN/Inf (one error naming every bad tensor) unless allowed. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const m = await loadAnyModel(path);
  const fileName = (n: string) => {
    try {
      return (m.source.format === "hf" ? m.spec.hfName(n) : m.spec.ggufName(n)).split(":")[0]!;
    } catch {
      return n;
    }
  };
  checkFiniteTensors(m.weights, path, { ...opts, fileName });
  return m;
}

async function loadAnyModel(path: string): Promise<LoadedModel> {
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
    return loadHfModel(path);
  }
  if (path.toLowerCase().endsWith(".gguf")) return loadGgufModel(path);
  throw new SteerlabError("unsupported", `cannot tell the model format of ${path}`, {
    file: path,
    expected: "a Hugging Face model folder or a .gguf file",
    hint: "for a single .safetensors file, pass the folder that holds it and its config.json",
  });
}
