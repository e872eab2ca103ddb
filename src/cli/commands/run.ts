import type { Command } from "commander";
import { streamGenerate } from "../../model/generate.js";
import { openModel, requireTokenizer } from "../../model/open.js";
import {
  atMostForModel,
  collect,
  float,
  int,
  LIMITS,
  openOptions,
  seed,
  withModelOptions,
} from "../options.js";

export interface SamplingCliOptions {
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  stop: string[];
}

/** Sampling flags shared by run and generate. */
export function withSamplingOptions(cmd: Command): Command {
  return cmd
    .option("-n, --max-tokens <n>", "most new tokens", int("max-tokens", 1, LIMITS.maxTokens), 64)
    .option("-t, --temperature <t>", "0 = greedy", float("temperature", { min: 0 }), 0)
    .option("--top-k <k>", "sample from the k most likely tokens", int("top-k", 1))
    .option("--top-p <p>", "nucleus sampling mass", float("top-p", { min: 0, minOpen: true, max: 1 }))
    .option("--seed <n>", "sampling seed", seed("seed"), 0)
    .option("--stop <text>", "stop string (repeatable)", collect, [])
    .option("--chat", "wrap the prompt in the model's chat template as a user turn");
}

/** The sampling options of a call on a model with context `maxPositions` (-n beyond it is refused). */
export function samplingOptions(o: SamplingCliOptions, maxPositions: number) {
  return {
    maxNewTokens: atMostForModel(
      "max-tokens",
      o.maxTokens,
      maxPositions,
      `the model's context (${maxPositions} positions)`,
    ),
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    seed: o.seed,
    stopStrings: o.stop,
  };
}

export function registerRun(program: Command): void {
  withSamplingOptions(
    withModelOptions(
      program
        .command("run")
        .description("generate text from a prompt, streamed to stdout")
        .requiredOption("-p, --prompt <text>", "the prompt"),
    ),
  ).action(
    async (
      o: SamplingCliOptions & {
        model: string;
        prompt: string;
        chat?: boolean;
        backend: string;
        threads?: number;
      },
    ) => {
      const m = await openModel(o.model, openOptions(o));
      try {
        const tok = requireTokenizer(m);
        const prompt = o.chat
          ? tok.applyChatTemplate([{ role: "user", content: o.prompt }], { addGenerationPrompt: true })
          : o.prompt;
        for await (const ev of streamGenerate(m.engine, tok, prompt, {
          ...samplingOptions(o, m.model.config.maxPositions),
          addSpecialTokens: !o.chat,
        })) {
          process.stdout.write(ev.text);
        }
        process.stdout.write("\n");
      } finally {
        await m.engine.dispose();
      }
    },
  );
}
