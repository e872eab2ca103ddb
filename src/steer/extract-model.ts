/**
 * Extraction on a real model: render and tokenize the dataset, read activations at the chosen layers, site and
 * read position (steer/collect.ts), fit the method per layer with diagnostics (steer/extract.ts) and return a
 * self-describing SteeringVector ready for vector-file.ts.
 */
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Engine } from "../model/engine.js";
import type { Site } from "../model/hooks.js";
import type { LoadedModel } from "../model/model.js";
import { requireTokenizer } from "../model/open.js";
import { collectActivations } from "./collect.js";
import { type ExtractOptions, extract } from "./extract.js";
import { rows } from "./linalg.js";
import type { LayerData } from "./methods/method.js";
import { type Dataset, renderMember } from "./pairs.js";
import { formatReadPosition, type ReadPosition } from "./read.js";
import { type SteeringVector, vectorFromExtraction } from "./vector.js";

export interface ExtractFromModelOptions extends ExtractOptions {
  method: string;
  /** 0-based blocks (already resolved). Default: every block. */
  layers?: readonly number[];
  /** Default resid_post (the site llama.cpp and repeng control vectors use). */
  site?: Site;
  /** Default: the last token. */
  read?: ReadPosition;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The model input for every dataset member: [positives..., negatives...] for pairs, texts for labelled. */
export function renderDataset(data: Dataset, tokenizer: Tokenizer): string[] {
  const chat = (prompt: string, answer: string) =>
    tokenizer.applyChatTemplate([{ role: "user", content: prompt }], { addGenerationPrompt: true }) + answer;
  if (data.kind === "pairs") {
    return [
      ...data.items.map((p) => renderMember(p.positive, p.prompt, p.template, chat)),
      ...data.items.map((p) => renderMember(p.negative, p.prompt, p.template, chat)),
    ];
  }
  return data.items.map((x) => renderMember(x.text, x.prompt, x.template, chat));
}

export async function extractFromModel(
  opened: { engine: Engine; tokenizer: Tokenizer | null; model: LoadedModel },
  data: Dataset,
  opts: ExtractFromModelOptions,
): Promise<SteeringVector> {
  const m = { ...opened, tokenizer: opened.tokenizer ?? requireTokenizer(opened.model) };
  const c = m.engine.config;
  const layers = opts.layers ?? Array.from({ length: c.nLayers }, (_, i) => i);
  const site = opts.site ?? "resid_post";
  const read = opts.read ?? { kind: "last" };
  if (layers.length === 0)
    throw new SteerlabError("bad_input", "no layers to extract from", { field: "layers" });
  const texts = renderDataset(data, m.tokenizer);
  // Chat-rendered text already carries the template's own special tokens.
  const seqs = texts.map((t, i) => {
    const item = data.items[data.kind === "pairs" ? i % data.items.length : i]!;
    return m.tokenizer.encode(t, { addSpecialTokens: item.template !== "chat" });
  });
  const acts = await collectActivations(m.engine, seqs, {
    points: layers.map((layer) => ({ layer, site })),
    read,
    batchSize: opts.batchSize,
    onProgress: opts.onProgress,
  });
  const D = c.hiddenSize;
  const perLayer = new Map<number, LayerData>();
  for (const layer of layers) {
    const a = acts.get(`blocks.${layer}.hook_${site}`)!;
    if (data.kind === "pairs") {
      const n = data.items.length;
      perLayer.set(layer, {
        kind: "pairs",
        positive: rows(a.subarray(0, n * D), n, D),
        negative: rows(a.subarray(n * D, 2 * n * D), n, D),
      });
    } else {
      perLayer.set(layer, {
        kind: "labelled",
        x: rows(a, data.items.length, D),
        labels: Uint8Array.from(data.items, (x) => (x.positive ? 1 : 0)),
      });
    }
  }
  const result = extract(opts.method, perLayer, opts);
  return vectorFromExtraction(result, {
    site,
    model: c,
    fingerprint: m.model.fingerprint,
    readPosition: formatReadPosition(read),
    dataset: { hash: data.hash, size: data.items.length },
  });
}
