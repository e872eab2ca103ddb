/**
 * llama.cpp (through node-llama-cpp 3.21.1) as an independent oracle for next-token probabilities.
 * Settings follow DESIGN.md section 4: CPU only, F32 KV cache, no flash attention; probabilities are
 * renormalised because node-llama-cpp sums its softmax in float32 over the whole vocabulary.
 */
import { getLlama, type Llama } from "node-llama-cpp";

let llamaPromise: Promise<Llama> | null = null;

export function llamaCpp(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  return llamaPromise;
}

/**
 * Teacher-forced next-token probabilities at every position of `ids` (one sequence), as a dense
 * [T, V] array, renormalised to sum to 1 per row.
 */
export async function llamaCppProbs(
  modelPath: string,
  ids: readonly number[],
  vocab: number,
  threads = 2,
): Promise<Float32Array[]> {
  const llama = await llamaCpp();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const ctx = await model.createContext({
    contextSize: Math.max(64, ids.length + 8),
    batchSize: Math.max(64, ids.length),
    flashAttention: false,
    threads,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  try {
    const seq = ctx.getSequence();
    const input = ids.map((t) => [t as never, { generateNext: { probabilities: true } }] as never);
    const out = await seq.controlledEvaluate(input);
    const rows: Float32Array[] = [];
    for (let i = 0; i < ids.length; i++) {
      const probs = out[i]?.next.probabilities;
      if (!probs) throw new Error(`llama.cpp returned no probabilities at position ${i}`);
      const row = new Float32Array(vocab);
      let s = 0;
      for (const [k, p] of probs) {
        if (Number(k) >= vocab) throw new Error(`llama.cpp token id ${k} >= vocab ${vocab}`);
        row[Number(k)] = p;
        s += p;
      }
      for (let j = 0; j < vocab; j++) row[j] = row[j]! / s;
      rows.push(row);
    }
    return rows;
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}
