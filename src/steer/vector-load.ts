/** Read or write a vector in either format, chosen by the file extension (.gguf = llama.cpp control vector). */
import type { FiniteOptions } from "../io/finite.js";
import type { ModelConfig } from "../model/config.js";
import { readControlVector, writeControlVector } from "./control-vector-gguf.js";
import type { SteeringVector } from "./vector.js";
import { readVector, writeVector } from "./vector-file.js";

export function isGgufPath(path: string): boolean {
  return path.toLowerCase().endsWith(".gguf");
}

/** A steerlab vector file (.safetensors) or a llama.cpp / repeng control vector (.gguf). */
export function loadVector(
  path: string,
  model?: { config: ModelConfig; fingerprint?: string },
  opts: FiniteOptions = {},
): SteeringVector {
  return isGgufPath(path)
    ? readControlVector(path, { model: model?.config, fingerprint: model?.fingerprint, ...opts })
    : readVector(path, opts);
}

/** Write as a control vector when the path ends in .gguf (llama.cpp's layout), else as a steerlab vector file. */
export function saveVector(path: string, v: SteeringVector, opts: { dropLayer0?: boolean } = {}): void {
  if (isGgufPath(path)) writeControlVector(path, v, { dropLayer0: opts.dropLayer0 });
  else writeVector(path, v);
}
