/**
 * Data-parallel training steps on worker threads: the batch's rows are split across workers, each runs the
 * forward and backward of its rows, and the gradients are combined weighted by how many targets each scored,
 * so the result equals the single-thread (weighted) mean-loss gradient. Parameters and gradients live in SharedArrayBuffers:
 * the optimizer updates the parameters in place and the workers see the new values at the next step.
 */
import { Worker } from "node:worker_threads";
import type { ModelConfig } from "../model/config.js";
import type { Params } from "./llama.js";

export interface ShardRequest {
  tokens: Int32Array; // [b, T]
  targets: Int32Array; // [b, T]
  weights: Float32Array | null; // [b, T] per-target loss weights, null = 1
  docStart: Int32Array | null; // [b, T] packed documents (see LlamaTrainer.forward), null = one per row
  batch: number;
  seq: number;
}

export interface ShardResult {
  loss: number; // weighted mean over the shard's scored targets
  scored: number; // sum of the shard's scored target weights
}

/** Copy parameters into shared memory (so workers can read them without copies). */
export function shareParams(p: Params): Params {
  return new Map(
    [...p].map(([k, v]) => {
      const s = new Float32Array(new SharedArrayBuffer(v.length * 4));
      s.set(v);
      return [k, s];
    }),
  );
}

interface Pending {
  resolve: (r: ShardResult) => void;
  reject: (e: Error) => void;
}

export class ParallelTrainer {
  private readonly workers: Worker[] = [];
  private readonly grads: Params[] = []; // per worker, shared
  private readonly pending: (Pending | null)[] = [];

  /** `params` must be shared (shareParams). */
  constructor(
    readonly config: ModelConfig,
    readonly params: Params,
    nWorkers: number,
    ortThreads = 1,
  ) {
    const here = import.meta.url;
    const fromSource = here.endsWith(".ts");
    const url = new URL(fromSource ? "./worker.ts" : "./worker.js", here).href;
    // Run from TypeScript sources (tsx), a worker thread must register tsx's loader itself before importing.
    const boot = fromSource
      ? `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(url)}); })`
      : null;
    for (let i = 0; i < nWorkers; i++) {
      const g = shareParams(new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)])));
      const workerData = { config, params, grads: g, ortThreads };
      const w = boot
        ? new Worker(boot, { eval: true, workerData })
        : new Worker(new URL(url), { workerData });
      w.on("message", (m: ShardResult) => {
        const p = this.pending[i]!;
        this.pending[i] = null;
        p.resolve(m);
      });
      w.on("error", (e) => {
        const p = this.pending[i];
        this.pending[i] = null;
        p?.reject(e);
      });
      this.workers.push(w);
      this.grads.push(g);
      this.pending.push(null);
    }
  }

  private run(i: number, req: ShardRequest): Promise<ShardResult> {
    return new Promise((resolve, reject) => {
      this.pending[i] = { resolve, reject };
      this.workers[i]!.postMessage(req);
    });
  }

  /**
   * One forward+backward over tokens/targets [B, T]: writes the mean-loss gradient into `grads` (overwriting it)
   * and returns the mean loss over all scored targets.
   */
  async step(
    grads: Params,
    tokens: Int32Array,
    targets: Int32Array,
    batch: number,
    seq: number,
    weights: Float32Array | null = null,
    docStart: Int32Array | null = null,
  ): Promise<number> {
    const n = this.workers.length;
    const jobs: Promise<ShardResult>[] = [];
    for (let i = 0; i < n; i++) {
      const b0 = Math.floor((i * batch) / n);
      const b1 = Math.floor(((i + 1) * batch) / n);
      jobs.push(
        this.run(i, {
          tokens: tokens.slice(b0 * seq, b1 * seq),
          targets: targets.slice(b0 * seq, b1 * seq),
          weights: weights === null ? null : weights.slice(b0 * seq, b1 * seq),
          docStart: docStart === null ? null : docStart.slice(b0 * seq, b1 * seq),
          batch: b1 - b0,
          seq,
        }),
      );
    }
    const results = await Promise.all(jobs);
    const total = results.reduce((a, r) => a + r.scored, 0);
    let loss = 0;
    for (const g of grads.values()) g.fill(0);
    results.forEach((r, i) => {
      if (r.scored === 0) return;
      const w = r.scored / total;
      loss += w * r.loss;
      for (const [k, g] of grads) {
        const src = this.grads[i]!.get(k)!;
        for (let j = 0; j < g.length; j++) g[j] += w * src[j]!;
      }
    });
    return loss;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
