/**
 * One entry point for every checkpoint format: a folder is a Hugging Face model, a `.gguf` file is GGUF.
 */
import { existsSync, statSync } from "node:fs";
import { SteerlabError } from "../errors.js";
import { loadGgufModel } from "../io/gguf-model.js";
import { loadHfModel } from "../io/hf-model.js";
import type { LoadedModel, LoadOptions } from "./model.js";

export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  if (!existsSync(path)) {
    throw new SteerlabError("not_found", `model path does not exist: ${path}`, {
      file: path,
      hint: "pass a Hugging Face model folder (config.json + *.safetensors) or a .gguf file",
    });
  }
  if (statSync(path).isDirectory()) return loadHfModel(path, opts);
  if (path.toLowerCase().endsWith(".gguf")) return loadGgufModel(path, opts);
  throw new SteerlabError("unsupported", `cannot tell the model format of ${path}`, {
    file: path,
    expected: "a Hugging Face model folder or a .gguf file",
    hint: "for a single .safetensors file, pass the folder that holds it and its config.json",
  });
}
