/**
 * Load a saved demo model (Hugging Face folder) back into the trainer's DemoLm, through steerlab's own HF loader,
 * so evaluating a shipped model goes through exactly the files users get.
 */

import { SteerlabError } from "../src/errors.js";
import { loadHfModel } from "../src/io/hf-model.js";
import { denseWeight } from "../src/model/weights.js";
import { LlamaTrainer, type Params } from "../src/train/llama.js";
import type { MatmulBackend } from "../src/train/matmul.js";
import type { DemoLm } from "./lm.js";

export async function loadDemoLm(dir: string, mm: MatmulBackend): Promise<DemoLm> {
  const m = await loadHfModel(dir);
  if (!m.tokenizer) {
    throw new SteerlabError("bad_file", "the demo model has no tokenizer.json", { file: dir });
  }
  const params: Params = new Map([...m.weights].map(([k, t]) => [k, denseWeight(t).data]));
  return {
    config: m.config,
    params,
    tokenizer: m.tokenizer,
    trainer: new LlamaTrainer(m.config, mm),
    bos: m.config.bosTokenId ?? 1,
    eos: m.config.eosTokenIds[0] ?? 2,
    pad: 0,
  };
}
