/**
 * The forward driver (model/driver.ts) over steerlab's own ggml graphs (ggml-backend.ts) on ggml's CPU backend,
 * the tensor library of llama.cpp, through the addon (addon.ts). Weights stay in the file's layout and type
 * (every GGUF quant type llama.cpp runs, no re-quantization), mapped or repacked as llama.cpp does
 * (ggml-weights.ts); the key/value cache is F16 by default, as llama.cpp's.
 */
import os from "node:os";
import { SteerlabError } from "../../errors.js";
import { archSpec } from "../../model/arch/registry.js";
import type { ModelConfig } from "../../model/config.js";
import { ForwardDriver } from "../../model/driver.js";
import { ropeInvFreq } from "../../model/rope.js";
import { checkWeights, gib, type ModelWeights } from "../../model/weights.js";
import { loadGgml } from "./addon.js";
import { GgmlForward, type GgmlStats } from "./ggml-backend.js";
import { CACHE_TYPES, type CacheType, type GgmlKV } from "./ggml-kv.js";
import { GgmlWeights, type MatmulWeights } from "./ggml-weights.js";

export { CACHE_TYPES, type CacheType } from "./ggml-kv.js";
export type { MatmulWeights } from "./ggml-weights.js";

export interface GgmlEngineOptions {
  /** Compute threads (default: every core). */
  threads?: number;
  /** Key/value cache type: "f16" (default, as llama.cpp's --cache-type-k/-v) or "f32" (exact). */
  cacheType?: CacheType;
  /**
   * Quantized matmul weights: "repack" (default, as llama.cpp: into ggml's AMX / CPU_REPACK buffers, the file
   * pages released) or "map" (used from the mapped file as they are).
   */
  matmulWeights?: MatmulWeights;
  /**
   * Keep the compute threads in a persistent pool between graphs (default true, as llama.cpp); false starts and
   * joins them on every graph.
   */
  threadpool?: boolean;
  /**
   * Check the weights taken from the file for NaN/Inf in the addon as they are mapped or repacked (default
   * false: loadModel's default check has already read them). openModel sets it and loads with finiteCheck
   * "read", so JS never reads the mapped weights.
   */
  checkFinite?: boolean;
  /** Plain notes: what loads and how much memory it takes, said before it is taken. */
  onInfo?: (message: string) => void;
  /** Called after each block's weights are mapped or repacked (and once more for embeddings and head). */
  onProgress?: (e: { label: string; done: number; total: number }) => void;
}

function badOption(field: string, expected: string, got: unknown): SteerlabError {
  return new SteerlabError("bad_input", `invalid ${field} ${JSON.stringify(got)}`, {
    field,
    expected,
    got: String(got),
  });
}

/**
 * RoPE frequency divisors for ggml_rope_ext: ff[i] = base^(-2i/hd) / invFreq[i], so ggml's angle
 * p * base^(-2i/hd) / ff[i] is p * invFreq[i] for any scaling (rope.ts). Null without scaling.
 */
export function ropeFreqFactors(c: ModelConfig): Float32Array | null {
  if (archSpec(c.arch).positional !== "rope" || c.ropeScaling === null) return null;
  const inv = ropeInvFreq(c);
  return Float32Array.from(inv, (f, i) => c.ropeTheta ** ((-2 * i) / c.headDim) / f);
}

export async function createGgmlEngine(
  model: { config: ModelConfig; weights: ModelWeights },
  opts: GgmlEngineOptions = {},
): Promise<GgmlEngine> {
  // Unavailable (no binaries for this platform, addon not built): "unsupported", saying what is missing and how
  // to build it.
  const addon = loadGgml();
  const c = model.config;
  checkWeights(c, model.weights, "createGgmlEngine");
  const threads = opts.threads ?? os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw badOption("threads", "an integer >= 1", threads);
  const cacheType = opts.cacheType ?? "f16";
  if (!CACHE_TYPES.includes(cacheType)) throw badOption("cacheType", CACHE_TYPES.join(" | "), cacheType);
  const matmul = opts.matmulWeights ?? "repack";
  if (matmul !== "repack" && matmul !== "map") throw badOption("matmulWeights", "repack | map", matmul);

  const ggml = addon.backend(threads, { threadpool: opts.threadpool ?? true });
  let weights: GgmlWeights | null = null;
  try {
    weights = new GgmlWeights(ggml, c, model.weights, matmul, opts.checkFinite ?? false);
    const b = weights.bytes;
    const into = addon.extraBufferTypes.length ? addon.extraBufferTypes.join(" / ") : "CPU memory";
    opts.onInfo?.(
      `building ${c.nLayers} blocks on ggml (${addon.device}, ${threads} threads): ${gib(b.mapped)} mapped ` +
        `from the file, ${gib(b.repacked)} repacked (${into}), ${gib(b.copied)} copied; ${cacheType} key/value cache`,
    );
    const total = c.nLayers + 1;
    weights.load(-1);
    opts.onProgress?.({ label: "loading blocks", done: 1, total });
    for (let l = 0; l < c.nLayers; l++) {
      weights.load(l);
      opts.onProgress?.({ label: "loading blocks", done: l + 2, total });
    }
    return new GgmlEngine(new GgmlForward(c, ggml, weights, cacheType, ropeFreqFactors(c)));
  } catch (e) {
    weights?.dispose();
    ggml.dispose();
    throw e;
  }
}

/** The forward driver over steerlab's graphs on ggml. */
export class GgmlEngine extends ForwardDriver<GgmlKV> {
  /** Memory held: weights by how they are held, and ggml's own accounting. */
  stats(): GgmlStats {
    return (this.backend as GgmlForward).stats();
  }

  get cacheType(): CacheType {
    return (this.backend as GgmlForward).cacheType;
  }
}
