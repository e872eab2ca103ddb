/**
 * The in-browser model: onnxruntime-web (WASM) sessions over the ONNX graphs the server encodes from
 * model/graph (GET api/model), driven by runtime/ort-engine.ts's OrtEngine, the same forward code as the Node
 * engine; the tokenizer is the library's, from the model's tokenizer.json. After loading, nothing about the
 * model is asked of the server.
 */

import mjsUrl from "onnxruntime-web/ort-wasm-simd-threaded.mjs?url";
import wasmUrl from "onnxruntime-web/ort-wasm-simd-threaded.wasm?url";
import * as ort from "onnxruntime-web/wasm";
import { type TokenizerConfig, tokenizerFromJson } from "../../../src/io/tokenizer.js";
import type { Tokenizer } from "../../../src/io/tokenizer-types.js";
import { archSpec } from "../../../src/model/arch/registry.js";
import { ropeInvFreq } from "../../../src/model/rope.js";
import { OrtEngine } from "../../../src/runtime/ort-engine.js";
import type { ModelManifest } from "../../../src/serve/lab/types.js";
import { getBytes, getJson } from "../api.js";

export interface BrowserModel {
  engine: OrtEngine;
  tokenizer: Tokenizer;
  manifest: ModelManifest;
  /** Bytes fetched (graphs + weights) and time to fetch and create every session. */
  bytes: number;
  loadMs: number;
  threads: number;
}

/** Load the server's model into onnxruntime-web; `onProgress(done, total)` counts graphs. */
export async function loadBrowserModel(
  onProgress?: (done: number, total: number) => void,
  /** WASM threads; default up to 4, leaving a core to the page. */
  wantThreads?: number,
): Promise<BrowserModel> {
  const t0 = performance.now();
  // Threads need cross-origin isolation (the lab's COOP/COEP headers); one thread otherwise.
  const threads = globalThis.crossOriginIsolated
    ? Math.max(1, Math.min(16, wantThreads ?? Math.min(4, navigator.hardwareConcurrency - 1)))
    : 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = {
    mjs: new URL(mjsUrl, location.href).href,
    wasm: new URL(wasmUrl, location.href).href,
  };
  const manifest = await getJson<ModelManifest>("api/model");
  const tok = await getJson<{ json: Record<string, unknown>; config: TokenizerConfig }>(
    "api/model/tokenizer",
  );
  const tokenizer = tokenizerFromJson(tok.json, tok.config);
  const sessions = new Map<string, ort.InferenceSession>();
  let bytes = 0;
  let done = 0;
  onProgress?.(0, manifest.graphs.length);
  try {
    for (const g of manifest.graphs) {
      const [model, ...files] = await Promise.all([getBytes(g.url), ...g.files.map((f) => getBytes(f.url))]);
      bytes += model!.byteLength + files.reduce((s, f) => s + f.byteLength, 0);
      const externalData = g.files.map((f, i) => ({ path: f.path, data: files[i]! }));
      sessions.set(
        g.name,
        await ort.InferenceSession.create(model!, {
          executionProviders: ["wasm"],
          graphOptimizationLevel: "all",
          externalData,
        }),
      );
      onProgress?.(++done, manifest.graphs.length);
    }
  } catch (e) {
    await Promise.all([...sessions.values()].map((s) => s.release()));
    throw e;
  }
  const c = manifest.config;
  const get = (name: string) => {
    const s = sessions.get(name);
    if (!s) throw new Error(`the server's model lacks graph ${name}`);
    return s;
  };
  const L = Array.from({ length: c.nLayers }, (_, l) => l);
  const blocks =
    manifest.granularity === "site"
      ? { kind: "site" as const, attn: L.map((l) => get(`attn.${l}`)), mlp: L.map((l) => get(`mlp.${l}`)) }
      : { kind: "block" as const, block: L.map((l) => get(`block.${l}`)) };
  const rope = archSpec(c.arch).positional === "rope" ? ropeInvFreq(c) : null;
  const engine = new OrtEngine(c, blocks, get("head"), rope);
  return { engine, tokenizer, manifest, bytes, loadMs: performance.now() - t0, threads };
}
