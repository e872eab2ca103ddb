import type { Command } from "commander";
import { Option } from "commander";
import { checkOutputFile } from "../../io/write-atomic.js";
import { SITES, type Site } from "../../model/hooks.js";
import { openModel, requireTokenizer } from "../../model/open.js";
import { extractFromModel } from "../../steer/extract-model.js";
import { methodNames } from "../../steer/methods/registry.js";
import { loadDataset } from "../../steer/pairs.js";
import { parseReadPosition } from "../../steer/read.js";
import { saveVector } from "../../steer/vector-load.js";
import {
  batchSizeOption,
  layerSpec,
  layersFor,
  openOptions,
  seed,
  vectorOutput,
  withModelOptions,
} from "../options.js";
import { progressReporter } from "../progress.js";

function fmt(x: number | null, digits = 3): string {
  return x === null || !Number.isFinite(x) ? "-" : x.toFixed(digits);
}

export function registerExtract(program: Command): void {
  withModelOptions(
    program
      .command("extract")
      .description(
        "extract a steering vector from contrastive pairs (or labelled texts) and print per-layer diagnostics",
      )
      .requiredOption(
        "--pairs <file>",
        'JSONL: {"positive","negative"[,"prompt","template"]} or {"text","label"}',
      )
      .requiredOption(
        "-o, --output <file>",
        "vector file: .safetensors (steerlab) or .gguf (llama.cpp control vector)",
        (v: string) => vectorOutput("output", v),
      ),
  )
    .option("--method <name>", `extraction method (${methodNames().join(", ")})`, "repe-pca")
    .option("--layers <spec>", 'layers to extract: "all", "-8..-1", "3,5,7"', layerSpec("layers"), "all")
    .addOption(new Option("--site <site>", "hook site to read").choices(SITES).default("resid_post"))
    .option("--read <pos>", "read position: last | index:-K | mean-suffix:K | mean", "last")
    .option("--batch-size <n>", "sequences per forward", batchSizeOption, 8)
    .option("--seed <n>", "seed of the power iteration and the folds", seed("seed"), 7)
    .option(
      "--shuffle-seed <n>",
      "repe-pca: seed of the in-pair order shuffle (RepE's datasets shuffle every pair; default 1)",
      seed("shuffle-seed"),
    )
    .option("--no-shuffle", "repe-pca: keep each pair's order as given (the paper's fairness vectors did)")
    .option("--json", "print the diagnostics as JSON")
    .action(
      async (o: {
        model: string;
        pairs: string;
        output: string;
        method: string;
        layers: string;
        site: Site;
        read: string;
        batchSize: number;
        seed: number;
        shuffle: boolean;
        shuffleSeed?: number;
        json?: boolean;
        backend: string;
        threads?: number;
      }) => {
        const data = loadDataset(o.pairs);
        checkOutputFile(o.output); // before the extraction, not after it
        const m = await openModel(o.model, openOptions(o));
        try {
          const tokenizer = requireTokenizer(m);
          const progress = o.json ? undefined : progressReporter();
          const v = await extractFromModel({ engine: m.engine, tokenizer, model: m.model }, data, {
            method: o.method,
            layers: layersFor("layers", o.layers, m.model.config.nLayers),
            site: o.site,
            read: parseReadPosition(o.read),
            batchSize: o.batchSize,
            seed: o.seed,
            shufflePairs: o.shuffle ? (o.shuffleSeed ?? 1) : false,
            onProgress: progress
              ? (done, total) => progress({ label: "reading activations", done, total })
              : undefined,
          });
          progress?.end();
          saveVector(o.output, v, { dropLayer0: true });
          const diags = [...v.diagnostics.values()];
          if (o.json) {
            process.stdout.write(
              `${JSON.stringify({ output: o.output, method: v.method, site: v.site, suggestedLayers: v.suggestedLayers, diagnostics: diags }, null, 2)}\n`,
            );
            return;
          }
          process.stdout.write(
            `${v.method} on ${data.items.length} ${data.kind === "pairs" ? "pairs" : "texts"} from ${o.pairs}, site ${v.site}, read ${v.readPosition}\n`,
          );
          process.stdout.write(
            `${"layer".padStart(5)} ${"heldout".padStart(8)} ${"train".padStart(6)} ${"expl.var".padStart(8)} ${"gap".padStart(8)} ${"|meandiff|".padStart(10)} ${"|resid|".padStart(9)}\n`,
          );
          for (const d of diags) {
            process.stdout.write(
              `${String(d.layer).padStart(5)} ${fmt(d.heldOutAccuracy).padStart(8)} ${fmt(d.trainAccuracy).padStart(6)} ${fmt(d.explainedVariance).padStart(8)} ${fmt(d.projectionGap).padStart(8)} ${fmt(d.meanDiffNorm).padStart(10)} ${fmt(d.residNorm).padStart(9)}\n`,
            );
          }
          process.stdout.write(`suggested layers: ${v.suggestedLayers.join(",")}\nwrote ${o.output}\n`);
        } finally {
          await m.engine.dispose();
        }
      },
    );
}
