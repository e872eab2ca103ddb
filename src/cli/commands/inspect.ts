import type { Command } from "commander";
import { archSpec } from "../../model/arch/registry.js";
import { inspectModel } from "../../model/inspect.js";
import { loadModel } from "../../model/load.js";
import { printWarning } from "../options.js";

export function registerInspect(program: Command): void {
  program
    .command("inspect")
    .description("show a model's architecture, sizes, dtypes and tokenizer")
    .argument("<path>", "a Hugging Face folder or a .gguf file")
    .option("--json", "print JSON")
    .action(async (path: string, o: { json?: boolean }) => {
      const s = inspectModel(await loadModel(path, { onWarning: printWarning }));
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      const c = s.config;
      const rows: [string, string][] = [
        ["path", s.path],
        ["format", s.format],
        ["architecture", s.arch],
        ["parameters", s.parameters.toLocaleString("en-US")],
        ["weight bytes in file", s.fileWeightBytes.toLocaleString("en-US")],
        [
          "dtypes",
          Object.entries(s.dtypes)
            .map(([k, v]) => `${k} x${v}`)
            .join(", "),
        ],
        ["layers", String(c.nLayers)],
        ["hidden size", String(c.hiddenSize)],
        ["heads / kv heads / head dim", `${c.nHeads} / ${c.nKvHeads} / ${c.headDim}`],
        ["mlp size", String(c.intermediateSize)],
        ["vocab", String(c.vocabSize)],
        ["context", String(c.maxPositions)],
        [
          "rope",
          archSpec(c.arch).positional === "learned"
            ? "learned positions"
            : `theta ${c.ropeTheta}${c.ropeScaling ? `, ${c.ropeScaling.type} scaling x${c.ropeScaling.factor}` : ""}`,
        ],
        ["tied embeddings", String(c.tiedEmbeddings)],
        [
          "tokenizer",
          s.tokenizer
            ? `vocab ${s.tokenizer.vocabSize}, bos ${s.tokenizer.bosTokenId}, eos ${s.tokenizer.eosTokenIds.join(",")}, chat template ${s.tokenizer.chatTemplate ? "yes" : "no"}`
            : "none",
        ],
        ["fingerprint", s.fingerprint],
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
    });
}
