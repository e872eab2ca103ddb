/**
 * A served demo chat model for the server tests: the model on ONNX Runtime, the demo's harmful-vs-harmless
 * reading vector extracted from it (layers 1..3, unit directions) in a temp vector library as a steerlab file
 * ("refusal") and as a llama.cpp control vector ("refusal-cv.gguf"), and a server on a free loopback port.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type OpenedModel, openModel } from "../../src/model/open.js";
import type { ServeOptions } from "../../src/serve/app.js";
import { type RunningServer, startServer } from "../../src/serve/server.js";
import { extractFromModel } from "../../src/steer/extract-model.js";
import { loadDataset } from "../../src/steer/pairs.js";
import type { SteeringVector } from "../../src/steer/vector.js";
import { saveVector } from "../../src/steer/vector-load.js";

/** The repository root, whether the tests run compiled (dist/test/serve) or from the sources (test/serve). */
export const ROOT = ["../../../", "../../"]
  .map((up) => fileURLToPath(new URL(up, import.meta.url)))
  .find((d) => existsSync(join(d, "demo/models/chat")))!;
export const DEMO_CHAT = join(ROOT, "demo/models/chat");

export interface Served {
  opened: OpenedModel;
  vector: SteeringVector;
  vectorsDir: string;
  server: RunningServer;
  close(): Promise<void>;
}

export async function openDemo(): Promise<{
  opened: OpenedModel;
  vector: SteeringVector;
  vectorsDir: string;
}> {
  const opened = await openModel(DEMO_CHAT, { threads: 1 });
  const data = loadDataset(join(ROOT, "demo/tasks/request-pairs.jsonl"));
  const vector = await extractFromModel(opened, data, {
    method: "repe-pca",
    layers: [1, 2, 3],
    batchSize: 16,
  });
  const vectorsDir = mkdtempSync(join(tmpdir(), "steerlab-serve-"));
  saveVector(join(vectorsDir, "refusal.safetensors"), vector);
  saveVector(join(vectorsDir, "refusal-cv.gguf"), vector);
  return { opened, vector, vectorsDir };
}

export async function serveDemo(opts: Partial<ServeOptions> = {}): Promise<Served> {
  const { opened, vector, vectorsDir } = await openDemo();
  const server = await startServer({ opened, port: 0, vectorsDir, ...opts });
  return {
    opened,
    vector,
    vectorsDir,
    server,
    async close() {
      await server.close();
      await opened.engine.dispose();
      rmSync(vectorsDir, { recursive: true, force: true });
    },
  };
}

export const CHAT_PROMPT = "How do I steal the bridge?";
