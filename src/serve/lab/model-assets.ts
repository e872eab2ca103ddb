/**
 * The model as the in-browser playground needs it: the ONNX graphs the ONNX Runtime engine runs (built by the
 * same model/graph functions, in the same per-site layout as createOrtEngine's default), each encoded with its
 * weights as external data files, plus the tokenizer files. Built once, on the first request, and kept.
 * The browser (web/src/engine/) creates onnxruntime-web sessions from them and runs runtime/ort-engine.ts's
 * OrtEngine on those sessions: the same forward code, no model call to the server.
 */
import { statSync } from "node:fs";
import { basename } from "node:path";
import { SteerlabError } from "../../errors.js";
import { readHfTokenizerFiles, type TokenizerConfig } from "../../io/tokenizer.js";
import { attnGraph, type BuiltGraph, headGraph, mlpGraph, weightFn } from "../../model/graph/graphs.js";
import { loadModel } from "../../model/load.js";
import { checkWeights } from "../../model/weights.js";
import type { ModelManifest } from "./types.js";

interface Encoded {
  bytes: Uint8Array;
  files: Map<string, Uint8Array>;
}

export interface ModelAssets {
  manifest: ModelManifest;
  graph(name: string): Encoded | undefined;
  tokenizer: { json: Record<string, unknown>; config: TokenizerConfig };
}

/** Build the assets of the model folder at `path` (a Hugging Face folder: the browser needs tokenizer.json). */
export async function buildModelAssets(path: string, urlBase: string): Promise<ModelAssets> {
  if (!statSync(path, { throwIfNoEntry: false })?.isDirectory())
    throw new SteerlabError("unsupported", "the in-browser playground needs a Hugging Face model folder", {
      file: path,
      hint: "serve a folder with config.json, *.safetensors and tokenizer.json (e.g. demo/models/chat)",
    });
  const tok = await readHfTokenizerFiles(path);
  if (!tok)
    throw new SteerlabError("not_found", "the model folder has no tokenizer.json", {
      file: path,
      hint: "the browser tokenizes prompts itself and needs tokenizer.json",
    });
  const m = await loadModel(path);
  const c = m.config;
  checkWeights(c, m.weights, "buildModelAssets");
  const w = weightFn(m.weights);
  const built: BuiltGraph[] = [];
  for (let l = 0; l < c.nLayers; l++) built.push(attnGraph(c, w, l), mlpGraph(c, w, l));
  built.push(headGraph(c, w));
  const graphs = new Map<string, Encoded>();
  let weightBytes = 0;
  for (const g of built) {
    const e = g.builder.encode(g.name, { external: true });
    graphs.set(g.name, { bytes: e.bytes, files: new Map(e.files.map((f) => [f.path, f.data])) });
  }
  const enc = encodeURIComponent;
  const manifest: ModelManifest = {
    name: basename(path),
    config: c,
    granularity: "site",
    graphs: [...graphs.entries()].map(([name, e]) => ({
      name,
      url: `${urlBase}/graph/${enc(name)}`,
      files: [...e.files.entries()].map(([p, d]) => {
        weightBytes += d.byteLength;
        return { path: p, url: `${urlBase}/graph/${enc(name)}/${enc(p)}`, bytes: d.byteLength };
      }),
    })),
    tokenizerUrl: `${urlBase}/tokenizer`,
    weightBytes,
  };
  return { manifest, graph: (n) => graphs.get(n), tokenizer: { json: tok.json, config: tok.config } };
}
