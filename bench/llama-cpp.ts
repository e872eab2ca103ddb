/**
 * The peer runner of the engine bench: llama.cpp (node-llama-cpp 3.21.1, CPU, F32 weights, F32 KV cache, no
 * flash attention) on the same random weights as the ONNX Runtime runner, written to an F32 GGUF by steerlab,
 * with the same prompts, steps and thread count.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Token } from "node-llama-cpp";
import { byteLevelTokenizerJson } from "../src/io/bpe-train.js";
import { saveGgufModel } from "../src/io/gguf-model.js";
import { ggufTokenizerMetadata } from "../src/io/tokenizer.js";
import { randomWeights } from "../src/model/random.js";
import {
  BENCH_CONFIGS,
  type BenchCase,
  type BenchRow,
  collect,
  DECODE_STEPS,
  LONG_PROMPT,
  MiB,
  measureSpeed,
  PROMPT,
  vmKiB,
} from "./cases.js";

export async function benchLlamaCpp(k: BenchCase): Promise<BenchRow> {
  const c = BENCH_CONFIGS[k.model]!;
  const dir = mkdtempSync(join(tmpdir(), "steerlab-bench-"));
  const file = join(dir, `${k.model}.gguf`);
  let bytes = 0;
  {
    const weights = randomWeights(c, 1);
    for (const t of weights.values()) bytes += t.data.byteLength;
    const tok = byteLevelTokenizerJson(c.vocabSize);
    saveGgufModel(file, c, weights, {
      tokenizerMeta: ggufTokenizerMetadata(tok, { bosTokenId: null, eosTokenId: null }),
      dtype: "F32",
    });
  }
  collect();
  const baseRssMiB = vmKiB("VmRSS") / 1024;
  try {
    const t0 = performance.now();
    const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
    const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const ctx = await model.createContext({
      contextSize: LONG_PROMPT + DECODE_STEPS + 16,
      batchSize: PROMPT,
      flashAttention: false,
      threads: { ideal: k.threads, min: k.threads },
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
    });
    const buildS = (performance.now() - t0) / 1000;
    const seq = ctx.getSequence();
    // The same prompts and token ids as the ORT runner; each step computes the next token's logits.
    const speed = await measureSpeed(c.vocabSize, {
      reset: () => seq.clearHistory(),
      prefill: (p) => seq.evaluateWithoutGeneratingNewTokens(p as Token[]),
      step: async (id) => {
        await seq.controlledEvaluate([[id as Token, { generateNext: { token: true } }]]);
      },
    });
    collect();
    const steadyRssMiB = vmKiB("VmRSS") / 1024;
    await ctx.dispose();
    await model.dispose();
    return {
      ...k,
      weightMiB: bytes / MiB,
      buildS,
      ...speed,
      peakRssMiB: vmKiB("VmHWM") / 1024,
      steadyRssMiB,
      baseRssMiB,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
