#!/usr/bin/env node
/** The steerlab command line: a thin skin over the library. Only this layer prints or exits. */
import { Command } from "commander";
import { isSteerlabError } from "../errors.js";
import { VERSION } from "../version.js";
import { registerDemo, registerExperiment } from "./commands/demo.js";
import { registerExtract } from "./commands/extract.js";
import { registerFit } from "./commands/fit.js";
import { registerGenerate } from "./commands/generate.js";
import { registerInspect } from "./commands/inspect.js";
import { registerLogprobs } from "./commands/logprobs.js";
import { registerMerge } from "./commands/merge.js";
import { registerReport } from "./commands/report.js";
import { registerRun } from "./commands/run.js";
import { registerServe } from "./commands/serve.js";
import { registerStatus } from "./commands/status.js";
import { registerSweep } from "./commands/sweep.js";
import { registerVector } from "./commands/vector.js";
import { registerWorker } from "./commands/worker.js";

export function buildProgram(): Command {
  const program = new Command()
    .name("steerlab")
    .description("steer language models with representation engineering, and measure what it costs")
    .version(VERSION)
    .showHelpAfterError();
  registerInspect(program);
  registerRun(program);
  registerLogprobs(program);
  registerExtract(program);
  registerGenerate(program);
  registerVector(program);
  registerSweep(program);
  registerMerge(program);
  registerWorker(program);
  registerStatus(program);
  registerFit(program);
  registerReport(program);
  registerServe(program);
  registerDemo(program);
  registerExperiment(program);
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (isSteerlabError(e)) {
      process.stderr.write(`steerlab: error [${e.code}]: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
}

await main();
