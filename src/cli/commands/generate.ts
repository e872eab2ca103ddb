import type { Command } from "commander";
import { Option } from "commander";
import { generate, streamGenerate } from "../../model/generate.js";
import { openModel, requireTokenizer } from "../../model/open.js";
import { preparePrompt, steerCallHooks } from "../../steer/steer-call.js";
import { checkVectorFits } from "../../steer/vector.js";
import { loadVector } from "../../steer/vector-load.js";
import { float, floatList, layerSpec, layersFor, openOptions, withModelOptions } from "../options.js";
import { type SamplingCliOptions, samplingOptions, withSamplingOptions } from "./run.js";

interface GenerateCliOptions extends SamplingCliOptions {
  model: string;
  prompt: string;
  vector: string;
  coeff: number;
  compare?: number[];
  layers?: string;
  positions: string;
  marker?: string;
  op: "add" | "ablate" | "clamp";
  normGuard?: boolean;
  allowOtherWeights?: boolean;
  chat?: boolean;
  json?: boolean;
  backend: string;
  threads?: number;
  allowNonFinite?: boolean;
}

export function registerGenerate(program: Command): void {
  withSamplingOptions(
    withModelOptions(
      program
        .command("generate")
        .description("generate with a steering vector applied (one call; nothing persists)")
        .requiredOption("-p, --prompt <text>", "the prompt")
        .requiredOption("--vector <file>", "vector file (.safetensors) or llama.cpp control vector (.gguf)"),
    ),
  )
    .option("-c, --coeff <r>", "steering coefficient r_e", float("coeff"), 1)
    .option(
      "--compare <list>",
      'generate once per coefficient, e.g. "-2,0,2", and print them side by side',
      floatList("compare"),
    )
    .option(
      "--layers <spec>",
      'layers to steer: "-8..-1", "3,5", "all" (default: the vector\'s suggested layers)',
      layerSpec("layers"),
    )
    .option("--positions <spec>", "all | prompt | generated | after | first:K | last:K | window:A..B", "all")
    .option(
      "--marker <text>",
      "with --positions after: steer after this text (e.g. the end of the user turn)",
    )
    .addOption(new Option("--op <op>", "operator").choices(["add", "ablate", "clamp"]).default("add"))
    .option("--norm-guard", "rescale steered positions back to their unsteered norm")
    .option("--allow-other-weights", "apply a vector made for another checkpoint of the same shape")
    .option("--json", "print JSON")
    .action(async (o: GenerateCliOptions) => {
      const m = await openModel(o.model, openOptions(o));
      try {
        const tok = requireTokenizer(m);
        const vector = loadVector(o.vector, m.model, { allowNonFinite: o.allowNonFinite });
        checkVectorFits(vector, m.model.config, m.model.fingerprint, {
          allowOtherWeights: o.allowOtherWeights,
          file: o.vector,
        });
        const p = preparePrompt(tok, o.prompt, o.chat);
        const hooksFor = (coeff: number) =>
          steerCallHooks(tok, p, {
            vector,
            coeff,
            layers: o.layers,
            positions: o.positions,
            marker: o.marker,
            op: o.op,
            normGuard: o.normGuard,
            nLayers: m.model.config.nLayers,
          });
        if (o.layers) layersFor("layers", o.layers, m.model.config.nLayers);
        const sampling = samplingOptions(o, m.model.config.maxPositions);
        if (!o.compare && !o.json) {
          for await (const ev of streamGenerate(m.engine, tok, p.ids, {
            ...sampling,
            hooks: hooksFor(o.coeff),
          })) {
            process.stdout.write(ev.text);
          }
          process.stdout.write("\n");
          return;
        }
        const coeffs = o.compare ?? [o.coeff];
        const results = [];
        for (const coeff of coeffs) {
          const r = await generate(m.engine, tok, p.ids, { ...sampling, hooks: hooksFor(coeff) });
          results.push({ coeff, text: r.text, finishReason: r.finishReason, tokens: r.ids.length });
        }
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ prompt: p.text, results }, null, 2)}\n`);
          return;
        }
        printColumns(results.map((r) => ({ title: `r_e = ${r.coeff}`, text: r.text })));
      } finally {
        await m.engine.dispose();
      }
    });
}

/** Side-by-side columns sized to the terminal (80 columns when not a TTY). */
function printColumns(cols: { title: string; text: string }[]): void {
  const width = Math.max(
    24,
    Math.floor(((process.stdout.columns ?? 80) - 3 * (cols.length - 1)) / cols.length),
  );
  const wrap = (s: string): string[] => {
    const out: string[] = [];
    for (const para of s.replace(/\r/g, "").split("\n")) {
      let line = "";
      for (const ch of para) {
        if (line.length >= width) {
          out.push(line);
          line = "";
        }
        line += ch;
      }
      out.push(line);
    }
    return out;
  };
  const blocks = cols.map((c) => [c.title, "-".repeat(Math.min(width, c.title.length)), ...wrap(c.text)]);
  const rows = Math.max(...blocks.map((b) => b.length));
  for (let i = 0; i < rows; i++) {
    process.stdout.write(
      `${blocks
        .map((b) => (b[i] ?? "").padEnd(width))
        .join(" | ")
        .trimEnd()}\n`,
    );
  }
}
