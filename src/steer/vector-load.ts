/** Read or write a vector in either format, chosen by the file extension (.gguf = llama.cpp control vector). */

import { SteerlabError } from "../errors.js";
import type { FiniteOptions } from "../io/finite.js";
import type { ModelConfig } from "../model/config.js";
import { decodeControlVector, readControlVector, writeControlVector } from "./control-vector-gguf.js";
import type { SteeringVector } from "./vector.js";
import { decodeVector, readVector, writeVector } from "./vector-file.js";

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

/** GGUF files start with the magic "GGUF"; steerlab vector files are safetensors. */
export function isGgufBytes(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x47 && buf[1] === 0x47 && buf[2] === 0x55 && buf[3] === 0x46;
}

/**
 * A vector from bytes (an upload): a llama.cpp control vector when it starts with the GGUF magic, else a steerlab
 * vector file. Every direction must be finite.
 */
export function decodeAnyVector(
  buf: Uint8Array,
  file: string,
  model?: { config: ModelConfig; fingerprint?: string },
): SteeringVector {
  const v = isGgufBytes(buf)
    ? decodeControlVector(buf, file, { model: model?.config, fingerprint: model?.fingerprint })
    : decodeVector(buf, file);
  const problems: string[] = [];
  for (const [l, d] of v.directions) {
    const i = d.findIndex((x) => !Number.isFinite(x));
    if (i >= 0) problems.push(`layer ${l}: non-finite value at ${i}`);
  }
  if (problems.length)
    throw new SteerlabError("bad_tensor", "the vector has NaN or Inf values", { file, problems });
  return v;
}
