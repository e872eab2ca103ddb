/**
 * In-browser decoding speed of the web lab's playground: the demo chat model on onnxruntime-web (WASM, headless
 * Chromium) against the same greedy generation on onnxruntime-node, one row, one thread each.
 *   npm run build && node dist/bench/lab-browser.bench.js [--tokens 96] [--threads 1] [--runs 3]
 * Prints tokens/s of the whole generation (prefill included) and of the decode steps after the first token.
 */
import { parseArgs } from "node:util";
import { demoConfig } from "../src/cli/commands/demo.js";
import { streamGenerate } from "../src/model/generate.js";
import { openModel } from "../src/model/open.js";
import { launch, openPage, skipReason, startLab } from "../test/web/lab-fixture.js";

const { values } = parseArgs({
  options: {
    tokens: { type: "string", default: "96" },
    threads: { type: "string", default: "1" },
    runs: { type: "string", default: "3" },
  },
});
const tokens = Number(values.tokens);
const threads = Number(values.threads);
const runs = Number(values.runs);
const prompt = "Once upon a time";
const skip = skipReason();
if (skip) throw new Error(skip);
const chat = demoConfig().models.find((m) => m.name === "chat")!.path;

const lab = await startLab({ modelPath: chat });
const browser = await launch();
try {
  const { page, errors } = await openPage(browser);
  const q = new URLSearchParams({
    mode: "browser",
    prompt,
    coeffs: "0",
    ignore_eos: "1",
    max: String(tokens),
    chat: "0",
    threads: String(threads),
  });
  await page.goto(`${lab.url}#/playground?${q}`);
  await page.waitForSelector("#generate");
  const browserRuns: string[] = [];
  for (let i = 0; i < runs + 1; i++) {
    await page.click("#generate");
    await page.waitForFunction(
      `["done", "failed"].includes(document.querySelector("#gen-status")?.getAttribute("data-status"))`,
      null,
      { timeout: 300_000 },
    );
    if (i > 0) browserRuns.push((await page.textContent("#gen-speed")) ?? ""); // the first run loads the model
    await page.evaluate(`document.querySelector("#gen-status").setAttribute("data-status", "")`);
  }
  if (errors.length) throw new Error(errors.join("\n"));
  for (const r of browserRuns) process.stdout.write(`onnxruntime-web (WASM, ${threads} thread): ${r}\n`);

  const m = await openModel(chat, { threads });
  try {
    for (let i = 0; i < runs + 1; i++) {
      const t0 = performance.now();
      let first = 0;
      let n = 0;
      for await (const _ of streamGenerate(m.engine, m.tokenizer, prompt, {
        maxNewTokens: tokens,
        stopTokens: [],
      })) {
        if (!first) first = performance.now();
        n++;
      }
      const s = (performance.now() - t0) / 1000;
      const d = (performance.now() - first) / 1000;
      if (i > 0)
        process.stdout.write(
          `onnxruntime-node (${threads} thread): ${n} tokens in ${s.toFixed(2)} s: ${(n / s).toFixed(1)} tok/s (decode after the first step ${((n - 1) / d).toFixed(1)} tok/s)\n`,
        );
    }
  } finally {
    await m.engine.dispose();
  }
} finally {
  await browser.close();
  await lab.close();
}
