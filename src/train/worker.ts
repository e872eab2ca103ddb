/**
 * A training worker (see parallel.ts): holds a LlamaTrainer over the shared parameters and answers each shard
 * request with its mean loss, having written the shard's mean-loss gradient into its shared gradient buffers.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ModelConfig } from "../model/config.js";
import { LlamaTrainer, type Params } from "./llama.js";
import { ortMatmul } from "./matmul.js";
import type { ShardRequest, ShardResult } from "./parallel.js";

const { config, params, grads, ortThreads } = workerData as {
  config: ModelConfig;
  params: Params;
  grads: Params;
  ortThreads: number;
};
const trainer = new LlamaTrainer(config, await ortMatmul(ortThreads));

parentPort!.on("message", async (req: ShardRequest) => {
  for (const g of grads.values()) g.fill(0);
  const acts = await trainer.forward(params, req.tokens, req.batch, req.seq, req.docStart);
  const loss = await trainer.backward(params, grads, acts, req.targets, req.weights);
  let scored = 0;
  req.targets.forEach((t, i) => {
    if (t >= 0) scored += req.weights === null ? 1 : req.weights[i]!;
  });
  const res: ShardResult = { loss, scored };
  parentPort!.postMessage(res);
});
