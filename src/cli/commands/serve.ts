import { existsSync, readFileSync } from "node:fs";
import type { Command } from "commander";
import { SteerlabError } from "../../errors.js";
import { checkDir, readTextFile } from "../../io/files.js";
import { openModel } from "../../model/open.js";
import { labRoutes } from "../../serve/lab/routes.js";
import { steeringObjectSchema } from "../../serve/schemas.js";
import { startServer } from "../../serve/server.js";
import { int, LIMITS, openOptions, withModelOptions } from "../options.js";

interface ServeCliOptions {
  model: string;
  backend: string;
  threads?: number;
  vectors?: string;
  host: string;
  port: number;
  apiKey?: string;
  apiKeyFile?: string;
  parallel: number;
  maxQueue: number;
  bodyLimit: number;
  alias?: string;
  steering?: string;
  runs?: string;
  allowOtherWeights?: boolean;
}

function parseSteering(text: string): unknown {
  try {
    return JSON.parse(text.trim().startsWith("{") ? text : readFileSync(text, "utf8"));
  } catch (e) {
    throw new SteerlabError("bad_input", "--steering is neither a JSON object nor a readable JSON file", {
      field: "steering",
      got: text.slice(0, 80),
      hint: `e.g. '{"vectors":[{"name":"refusal","scale":2}],"layers":[-3,-2]}'`,
      ...(e instanceof Error ? { problems: [e.message] } : {}),
    });
  }
}

export function registerServe(program: Command): void {
  withModelOptions(
    program
      .command("serve")
      .description("serve a model over an OpenAI-compatible HTTP API with steering per request")
      .option(
        "--vectors <dir>",
        "vector library directory (listed, uploaded to and deleted from over the API)",
      )
      .option("--host <addr>", "address to bind (loopback by default)", "127.0.0.1")
      .option("--port <n>", "port (0 = any free one)", int("port", 0, 65535), 8080)
      .option("--api-key <key>", "require Authorization: Bearer <key> on /v1/* (or set STEERLAB_API_KEY)")
      .option("--api-key-file <file>", "read the API key from a file (keeps it out of the process list)")
      .option(
        "--parallel <n>",
        "requests decoded together in one batch",
        int("parallel", 1, LIMITS.parallel),
        4,
      )
      .option(
        "--max-queue <n>",
        "requests allowed to wait before 429",
        int("max-queue", 1, LIMITS.maxQueue),
        64,
      )
      .option(
        "--body-limit <bytes>",
        "largest JSON request body",
        int("body-limit", 1024, LIMITS.bodyLimit),
        4 * 1024 * 1024,
      )
      .option("-a, --alias <name>", "model id in /v1/models and responses (default: the model's name)")
      .option(
        "--steering <json|file>",
        "default steering for requests that say nothing (JSON steering object)",
      )
      .option("--runs <dir>", "sweep runs directory (for the web lab)")
      .option(
        "--allow-other-weights",
        "serve library vectors extracted from another checkpoint of the same shape (e.g. base on chat)",
      ),
  ).action(async (o: ServeCliOptions) => {
    const defaultSteering = o.steering ? steeringObjectSchema.parse(parseSteering(o.steering)) : null;
    const apiKey = o.apiKeyFile
      ? readTextFile(o.apiKeyFile, "API key file", { maxBytes: 4096 }).trim()
      : (o.apiKey ?? process.env.STEERLAB_API_KEY ?? null);
    // Checked before the model loads: a wrong path should not cost a model load to find out.
    if (o.vectors && existsSync(o.vectors)) checkDir(o.vectors, "vector library (--vectors)");
    if (o.host !== "127.0.0.1" && o.host !== "localhost" && o.host !== "::1" && !apiKey) {
      process.stderr.write(`steerlab serve: warning: listening on ${o.host} without --api-key\n`);
    }
    const opened = await openModel(o.model, openOptions(o));
    const server = await startServer({
      opened,
      host: o.host,
      port: o.port,
      vectorsDir: o.vectors ?? null,
      apiKey,
      parallel: o.parallel,
      maxQueue: o.maxQueue,
      bodyLimit: o.bodyLimit,
      modelId: o.alias,
      defaultSteering,
      runsDir: o.runs ?? null,
      allowOtherWeights: o.allowOtherWeights === true,
      // The web lab at /lab: runs, vectors, and the model's graphs for the in-browser playground.
      extraRoutes: (app, ctx) =>
        app.route(
          "/lab",
          labRoutes({
            ...(o.runs ? { runsDir: o.runs } : {}),
            ...(o.vectors ? { vectorsDir: o.vectors } : {}),
            modelPath: o.model,
            modelConfig: ctx.opened.model.config,
            guard: ctx.requireKey, // with --api-key, the lab's data (weights, vectors, runs) needs it too
          }),
        ),
    });
    process.stderr.write(
      `steerlab serve: ${o.model} on ${server.url} (OpenAI API at ${server.url}/v1, web lab at ${server.url}/lab/)\n`,
    );
    const stop = async () => {
      await server.close();
      await opened.engine.dispose();
      process.exit(0);
    };
    process.once("SIGINT", () => void stop());
    process.once("SIGTERM", () => void stop());
  });
}
