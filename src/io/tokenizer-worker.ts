/**
 * The tokenizer sandbox's thread (see tokenizer-sandbox.ts): it holds its own @huggingface/tokenizers instance and
 * answers one request at a time on a MessagePort, raising a flag in shared memory when the answer is posted.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import type { SandboxRequest, SandboxResponse, SandboxWorkerData } from "./tokenizer-sandbox.js";

const { json, port, flag } = workerData as SandboxWorkerData;
const done = new Int32Array(flag);
const hf = new HfTokenizer(json, {});

function answer(r: SandboxResponse): void {
  port.postMessage(r);
  Atomics.store(done, 0, 1);
  Atomics.notify(done, 0);
}

port.on("message", (m: SandboxRequest) => {
  try {
    if (m.op === "encode") answer({ ok: true, ids: hf.encode(m.text, { add_special_tokens: m.add }).ids });
    else answer({ ok: true, text: hf.decode(m.ids, m.opts) });
  } catch (e) {
    answer({ ok: false, message: (e as Error).message });
  }
});
answer({ ok: true, ready: true });
parentPort?.unref();
