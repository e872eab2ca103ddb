/**
 * The peer side of the engine bench: llama.cpp (node-llama-cpp 3.21.1, CPU, F32 KV cache, no flash attention)
 * timed on the same GGUF weights and thread count as steerlab's engine.
 */
import { getLlama, type Token } from "node-llama-cpp";

export interface PeerTiming {
  prefillTokPerS: number;
  decodeTokPerS: number;
}

export async function benchLlamaCpp(
  ggufPath: string,
  opts: { prompt: number[]; decodeTokens: number; threads: number; repeats?: number },
): Promise<PeerTiming> {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
  const ctx = await model.createContext({
    contextSize: opts.prompt.length + opts.decodeTokens + 16,
    batchSize: Math.max(opts.prompt.length, 32),
    flashAttention: false,
    threads: { ideal: opts.threads, min: opts.threads },
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  try {
    const seq = ctx.getSequence();
    const repeats = opts.repeats ?? 3;
    let bestPrefill = Number.POSITIVE_INFINITY;
    for (let r = 0; r < repeats; r++) {
      await seq.clearHistory();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(opts.prompt as Token[]);
      bestPrefill = Math.min(bestPrefill, performance.now() - t0);
    }
    // Decode: greedy steps of one token after the prompt; the first step is excluded (warm-up).
    await seq.clearHistory();
    await seq.evaluateWithoutGeneratingNewTokens(opts.prompt.slice(0, -1) as Token[]);
    const it = seq.evaluate(opts.prompt.slice(-1) as Token[], { temperature: 0 });
    await it.next();
    const t0 = performance.now();
    for (let i = 0; i < opts.decodeTokens; i++) await it.next();
    const decodeMs = performance.now() - t0;
    await it.return();
    return {
      prefillTokPerS: (opts.prompt.length * 1000) / bestPrefill,
      decodeTokPerS: (opts.decodeTokens * 1000) / decodeMs,
    };
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}
