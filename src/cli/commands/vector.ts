import type { Command } from "commander";
import { negate, normalize, orthogonalize, scale, selectLayers, sum } from "../../steer/arithmetic.js";
import type { SteeringVector } from "../../steer/vector.js";
import { loadVector, saveVector } from "../../steer/vector-load.js";
import { float, floatList, int, LIMITS, layerSpec, vectorOutput } from "../options.js";

function norm(d: Float32Array): number {
  let s = 0;
  for (const x of d) s += x * x;
  return Math.sqrt(s);
}

export function vectorSummary(path: string, v: SteeringVector) {
  const layers = [...v.directions.keys()].sort((a, b) => a - b);
  return {
    path,
    site: v.site,
    hiddenSize: v.hiddenSize,
    layers,
    norms: Object.fromEntries(layers.map((l) => [l, norm(v.directions.get(l)!)])),
    scale: v.scale,
    method: v.method,
    model: v.model,
    modelHint: v.modelHint,
    readPosition: v.readPosition,
    dataset: v.dataset,
    suggestedLayers: v.suggestedLayers,
    signConvention: v.signConvention,
    createdBy: v.createdBy,
    diagnostics: Object.fromEntries(v.diagnostics),
  };
}

export function registerVector(program: Command): void {
  const cmd = program.command("vector").description("inspect, convert and combine steering vectors");

  cmd
    .command("info")
    .description("show a vector file's metadata, layers and norms")
    .argument("<file>", "vector file (.safetensors) or control vector (.gguf)")
    .option("--json", "print JSON")
    .action((file: string, o: { json?: boolean }) => {
      const s = vectorSummary(file, loadVector(file));
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      const model = s.model
        ? `${s.model.arch}, ${s.model.nLayers} layers, hidden ${s.model.hiddenSize}${s.model.fingerprint ? `, fingerprint ${s.model.fingerprint.slice(0, 16)}…` : ""}`
        : (s.modelHint ?? "unknown");
      const lines = [
        `file         ${s.path}`,
        `model        ${model}`,
        `site         ${s.site} (0-based blocks)`,
        `method       ${s.method}, read ${s.readPosition ?? "-"}, scale ${s.scale}`,
        `dataset      ${s.dataset ? `${s.dataset.size} items, ${s.dataset.hash.slice(0, 23)}…` : "-"}`,
        `suggested    ${s.suggestedLayers.join(",") || "-"}`,
        `created by   ${s.createdBy}`,
        `layers       ${s.layers.map((l) => `${l}:${s.norms[l]!.toFixed(3)}`).join(" ")}`,
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    });

  cmd
    .command("convert")
    .description("convert between steerlab vector files (.safetensors) and llama.cpp control vectors (.gguf)")
    .argument("<input>", "input vector")
    .argument(
      "<output>",
      "output vector (.gguf writes llama.cpp's layout; block 0 is dropped, llama.cpp never steers it)",
    )
    .option("--coeff <c>", "multiply the directions by c while converting", float("coeff"), 1)
    .action((input: string, output: string, o: { coeff: number }) => {
      vectorOutput("output", output); // before reading the input: nothing is written under another format
      const v = loadVector(input);
      saveVector(output, o.coeff === 1 ? v : scale(v, o.coeff), { dropLayer0: true });
      process.stdout.write(`wrote ${output}\n`);
    });

  cmd
    .command("combine")
    .description("sum, scale, negate, orthogonalise and select layers of vectors")
    .argument("<inputs...>", "vectors to sum (weighted with --weights)")
    .requiredOption("-o, --output <file>", "output vector (.safetensors or .gguf)", (v: string) =>
      vectorOutput("output", v),
    )
    .option("--weights <list>", "one weight per input, e.g. 1,-0.5", floatList("weights"))
    .option("--orthogonalize <file>", "remove the component along this vector, per layer")
    .option("--scale <c>", "multiply the result by c", float("scale"))
    .option("--negate", "flip the sign")
    .option("--normalize", "rescale every layer's direction to unit norm")
    .option("--layers <spec>", 'keep only these layers ("-8..-1", "3,5")', layerSpec("layers"))
    .option(
      "--n-layers <n>",
      "the model's layer count (for negative layer specs when the vector has none)",
      int("n-layers", 1, LIMITS.nLayers),
    )
    .action(
      (
        inputs: string[],
        o: {
          output: string;
          weights?: number[];
          orthogonalize?: string;
          scale?: number;
          negate?: boolean;
          normalize?: boolean;
          layers?: string;
          nLayers?: number;
        },
      ) => {
        const vs = inputs.map((p) => loadVector(p));
        let v = vs.length === 1 && !o.weights ? vs[0]! : sum(vs, o.weights);
        if (o.orthogonalize) v = orthogonalize(v, loadVector(o.orthogonalize));
        if (o.layers) v = selectLayers(v, o.layers, o.nLayers);
        if (o.negate) v = negate(v);
        if (o.normalize) v = normalize(v);
        if (o.scale !== undefined) v = scale(v, o.scale);
        saveVector(o.output, v, { dropLayer0: true });
        process.stdout.write(`wrote ${o.output}\n`);
      },
    );
}
