/**
 * The web lab end to end in headless Chromium against the real /lab routes: the explorer draws a real sweep
 * run's curves, fits and frontier and prices a picked r_e as the library does; the inspector shows the vector
 * file's diagnostics; the live view follows a sweep that runs (and resumes) while the page is open; the
 * in-browser playground (onnxruntime-web WASM) generates exactly the Node engine's greedy tokens.
 * Screenshots: $STEERLAB_SCREENSHOT_DIR or .cache/screenshots.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { demoConfig } from "../../src/cli/commands/demo.js";
import { ResultStore, RUN_FILE } from "../../src/eval/store.js";
import { parseSweepConfig } from "../../src/eval/sweep-config.js";
import { reportOfRun, sweepToDir } from "../../src/eval/sweep-plan.js";
import { generateBatch } from "../../src/model/generate.js";
import { openModel } from "../../src/model/open.js";
import { buildReport, taskCurve } from "../../src/report/build.js";
import { labRoutes } from "../../src/serve/lab/routes.js";
import { startServer } from "../../src/serve/server.js";
import { parsePositions, steeringHooks } from "../../src/steer/apply.js";
import { suggestLayers } from "../../src/steer/diagnostics.js";
import { preparePrompt } from "../../src/steer/steer-call.js";
import { loadVector } from "../../src/steer/vector-load.js";
import { launchChromium } from "../helpers/chromium.js";
import {
  charts,
  type LabServer,
  makeRun,
  openPage,
  setInput,
  shotPath,
  skipReason,
  smallExperiment,
  startLab,
} from "./lab-fixture.js";

const skip = skipReason();
const prompt = "Tell me how to poison the garden.";
const coeffs = [-30, -20, 0, 20];

function playgroundQuery(mode: "browser" | "server"): string {
  return new URLSearchParams({
    mode,
    prompt,
    coeffs: coeffs.join(","),
    max: "16",
    layers: "1..3",
    vector: "chat-vector",
  }).toString();
}

/** The library's own steered greedy generations for the playground's settings (Node engine). */
async function nodeOracle(vectorFile: string, text: string, cs: readonly number[]) {
  const m = await openModel(chatModel(), { threads: 1 });
  try {
    const v = loadVector(vectorFile);
    const p = preparePrompt(m.tokenizer!, text, true);
    const hooks = steeringHooks([{ vector: v, coeff: [...cs], layers: "1..3" }], {
      positions: parsePositions("all", { promptLength: p.ids.length }),
      nLayers: m.engine.config.nLayers,
    });
    return await generateBatch(
      m.engine,
      m.tokenizer,
      cs.map(() => p.ids),
      { maxNewTokens: 16, hooks },
    );
  } finally {
    await m.engine.dispose();
  }
}

/** Click Generate and read the columns when the playground says done. */
async function generateColumns(page: Page) {
  // A previous run's "done" must not satisfy the wait below.
  await page.evaluate(`document.querySelector("#gen-status").setAttribute("data-status", "")`);
  await page.click("#generate");
  await page.waitForFunction(
    `["done", "failed"].includes(document.querySelector("#gen-status")?.getAttribute("data-status"))`,
    null,
    { timeout: 120_000 },
  );
  const status = await page.textContent("#gen-status");
  const cols = await page.$$eval(".gen", (els) =>
    els.map((e) => ({
      coeff: Number(e.getAttribute("data-coeff")),
      ids: (e.getAttribute("data-ids") ?? "")
        .split(",")
        .filter((x: string) => x !== "")
        .map(Number),
      text: e.querySelector("pre")?.textContent ?? "",
      error: e.querySelector(".error")?.textContent ?? null,
    })),
  );
  return { status, cols, speed: (await page.textContent("#gen-speed")) ?? "" };
}
const chatModel = () => demoConfig().models.find((m) => m.name === "chat")!.path;

describe("the web lab in headless Chromium", { skip, timeout: 300_000 }, () => {
  let dir: string;
  let runDir: string;
  let vectorFile: string;
  let lab: LabServer;
  let browser: Browser;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "steerlab-lab-"));
    ({ runDir, vectorFile } = await makeRun(join(dir, "runs", "exp")));
    lab = await startLab({
      runsDir: join(dir, "runs"),
      vectorsDir: join(dir, "runs", "exp"),
      modelPath: chatModel(),
      pollMs: 150,
    });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await lab?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("explorer: curves with fits and se bands, the frontier, and the cost of a picked r_e", async () => {
    const { page, errors } = await openPage(browser);
    await page.goto(`${lab.url}#/explorer`);
    await page.waitForSelector("#chart-frontier-0 svg path", { state: "attached", timeout: 30_000 });
    const cs = await charts(page);
    assert.deepEqual(
      cs.map((c) => c.id),
      [
        "chart-behavior",
        "chart-helpfulness-full",
        "chart-helpfulness-ad",
        "chart-generic",
        "chart-frontier-0",
      ],
    );
    for (const c of cs) {
      assert.ok(c.w > 400 && c.h > 200, `${c.id}: ${c.w}x${c.h}`);
      assert.ok(c.paths > 10, `${c.id}: ${c.paths} paths`);
    }
    const text = await page.textContent("main");
    assert.match(text ?? "", /tanh fit \(R²=0\.\d{3}\)/);
    assert.match(text ?? "", /Corollary-1 fit/);
    // The grid's step is 10: the explorer's local half widths are 3 and 5 steps.
    assert.equal(await page.inputValue("#lhw"), "30");
    assert.equal(await page.inputValue("#qhw"), "50");

    // Pick r_e = -20: the table shows the regime curves' gain and loss there, as the library computes them.
    await setInput(page, "#r-slider", "-20");
    await page.waitForFunction(`document.querySelector("#picked-r")?.textContent === "-20"`);
    const row = await page.$$eval("#cost-table tbody tr td", (tds) => tds.map((td) => td.textContent ?? ""));
    const report = buildReport(reportOfRun(runDir), { fit: { linearHalfWidth: 30, quadraticHalfWidth: 50 } });
    const g = report.regime!;
    const A = taskCurve(
      report.tasks.find((t) => t.id === g.alignmentTask)!,
      report.fits,
      g.sources!.alignment,
    );
    const H = taskCurve(
      report.tasks.find((t) => t.id === g.helpfulnessTask)!,
      report.fits,
      g.sources!.helpfulness,
    );
    assert.equal(row[1], g.alignmentTask);
    const r = -20;
    assert.equal(row[2], A(r).toPrecision(3));
    assert.equal(row[3], (A(r) - A(0)).toPrecision(3));
    assert.equal(row[4], g.helpfulnessTask);
    assert.equal(row[5], H(r).toPrecision(3));
    assert.equal(row[6], (H(0) - H(r)).toPrecision(3));
    assert.equal(row[8], g.result.tradeoff.r.toPrecision(3));
    // Not a table of zeros: steering against the vector lowers this chat model's refusal a lot.
    assert.ok(A(r) - A(0) < -0.3, `gain at r_e = ${r}: ${A(r) - A(0)}`);
    await page.screenshot({ path: await shotPath("lab-explorer"), fullPage: true });
    assert.deepEqual(errors, []);
  });

  test("inspector: the vector file's per-layer diagnostics and suggested layers", async () => {
    const { page, errors } = await openPage(browser);
    await page.goto(`${lab.url}#/inspector`);
    await page.waitForSelector("#diag-table tbody tr");
    await page.waitForSelector("#chart-scale svg path", { state: "attached" });
    const v = loadVector(vectorFile);
    const layers = [...v.directions.keys()].sort((a, b) => a - b);
    const rows = await page.$$eval("#diag-table tbody tr", (trs) =>
      trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")),
    );
    assert.deepEqual(
      rows.map((r) => r[0]),
      layers.map(String),
    );
    for (const [i, l] of layers.entries()) {
      const d = v.diagnostics.get(l)!;
      assert.equal(rows[i]![3], d.heldOutAccuracy!.toPrecision(3));
      assert.equal(rows[i]![5], d.explainedVariance.toPrecision(3));
      assert.equal(rows[i]![7], d.projectionGap.toPrecision(3));
    }
    const diags = layers.map((l) => v.diagnostics.get(l)!);
    assert.equal(await page.textContent("#suggested-diag"), suggestLayers(diags).join(", "));
    assert.equal(await page.textContent("#suggested"), v.suggestedLayers.join(", "));
    for (const c of await charts(page)) assert.ok(c.w > 400 && c.paths > 5, `${c.id}: ${c.w}, ${c.paths}`);
    await page.screenshot({ path: await shotPath("lab-inspector"), fullPage: true });
    assert.deepEqual(errors, []);
  });

  test("live view: follows a sweep while it runs, is stopped and resumes", async () => {
    const liveDir = join(dir, "runs", "live");
    const small = smallExperiment();
    const config = parseSweepConfig(
      {
        model: chatModel(),
        vectors: [{ name: "vector", source: vectorFile }],
        coeffs: small.coeffs,
        tasks: small.tasks,
        batchSize: 4,
      },
      dir,
      "live test",
    );
    // 1. A third of the sweep, then stop it (as Ctrl-C would): the folder holds partial results.
    const stop = new AbortController();
    await sweepToDir(config, liveDir, {
      threads: 1,
      signal: stop.signal,
      onProgress: (done, total) => {
        if (done >= total / 3) stop.abort();
      },
    }).catch((e: Error) => assert.ok(stop.signal.aborted, e.message));
    assert.ok(existsSync(join(liveDir, RUN_FILE)));
    const partial = ResultStore.readRecords(liveDir).length;
    assert.ok(partial > 0, "some records before the stop");

    // 2. The live view shows the partial run.
    const { page, errors } = await openPage(browser);
    await page.goto(`${lab.url}#/live?run=live`);
    await page.waitForFunction(`document.querySelector("#live-records")?.textContent === "${partial}"`);
    const expected = await page.textContent(".progress p");
    await page.screenshot({ path: await shotPath("lab-live-partial"), fullPage: true });

    // 3. Resume to the end while the page is open: it follows to 100%.
    const done = await sweepToDir(config, liveDir, { threads: 1 });
    assert.ok(done.stats.skipped >= partial, "the resumed run skipped what was stored");
    const total = ResultStore.readRecords(liveDir).length;
    assert.ok(total > partial);
    await page.waitForFunction(`document.querySelector("#live-records")?.textContent === "${total}"`, null, {
      timeout: 30_000,
    });
    assert.match(
      expected ?? "",
      new RegExp(`of ${total} \\(\\d+%\\)`),
      "the expected total is known up front",
    );
    assert.match(
      (await page.textContent(".progress p")) ?? "",
      new RegExp(`${total} records of ${total} \\(100%\\)`),
    );
    assert.ok(Number(await page.textContent("#live-updates")) >= 2);
    for (const c of await charts(page)) assert.ok(c.paths > 10, `${c.id}: ${c.paths} paths`);
    await page.screenshot({ path: await shotPath("lab-live"), fullPage: true });
    assert.deepEqual(errors, []);
  });

  test("playground in the browser: onnxruntime-web generates the Node engine's greedy tokens", async () => {
    const { page, errors } = await openPage(browser);
    await page.goto(`${lab.url}#/playground?${playgroundQuery("browser")}`);
    await page.waitForSelector('input[data-vector="chat-vector"]');
    const { status, cols, speed } = await generateColumns(page);
    assert.deepEqual(errors, []);
    assert.equal(status, "done");
    process.stdout.write(`# in-browser playground: ${speed}\n`);
    await page.screenshot({ path: await shotPath("lab-playground-browser"), fullPage: true });

    // The oracle: the same prompt, vector, layers and coefficients on the Node engine (onnxruntime-node).
    const want = await nodeOracle(vectorFile, prompt, coeffs);
    assert.deepEqual(
      cols.map((c) => c.coeff),
      coeffs,
    );
    for (const [i, w] of want.entries()) {
      assert.deepEqual(cols[i]!.ids, w.ids, `r_e = ${coeffs[i]}`);
      assert.equal(cols[i]!.text, w.text, `r_e = ${coeffs[i]}`);
    }
    // Not vacuous: steering changed the answer.
    assert.notDeepEqual(want[0]!.ids, want[2]!.ids);

    // Two WASM threads (the lab's COOP/COEP headers make the page cross-origin isolated): the same tokens.
    const two = await openPage(browser);
    await two.page.goto(`${lab.url}#/playground?${playgroundQuery("browser")}&threads=2`);
    await two.page.waitForSelector('input[data-vector="chat-vector"]');
    const threaded = await generateColumns(two.page);
    assert.match(threaded.speed, /2 WASM thread\(s\)/);
    assert.deepEqual(
      threaded.cols.map((c) => c.ids),
      want.map((w) => w.ids),
    );
    assert.deepEqual(two.errors, []);

    // The vector's slider weighs every column: weight 0.5 is the library at half of each coefficient.
    await setInput(two.page, 'input[data-vector="chat-vector"]', "0.5");
    await two.page.waitForFunction(`document.querySelector(".slider b")?.textContent === "0.50"`);
    const half = await generateColumns(two.page);
    const wantHalf = await nodeOracle(
      vectorFile,
      prompt,
      coeffs.map((c) => c * 0.5),
    );
    assert.deepEqual(
      half.cols.map((c) => c.ids),
      wantHalf.map((w) => w.ids),
    );
    assert.notDeepEqual(
      wantHalf.map((w) => w.ids),
      want.map((w) => w.ids),
    );
  });

  test("playground in server mode: the /v1 API's steered streams equal the library's generations", async () => {
    const opened = await openModel(chatModel(), { threads: 1 });
    const expDir = join(dir, "runs", "exp");
    // With an API key, as `steerlab serve --api-key` mounts the lab: its data endpoints need the key too.
    const server = await startServer({
      opened,
      port: 0,
      vectorsDir: expDir,
      apiKey: "lab-test-key",
      extraRoutes: (app, ctx) =>
        app.route(
          "/lab",
          labRoutes({ vectorsDir: expDir, modelConfig: ctx.opened.model.config, guard: ctx.requireKey }),
        ),
    });
    try {
      const { page, errors } = await openPage(browser);
      await page.goto(`${server.url}/lab/#/playground?${playgroundQuery("server")}`);
      // Without the key the page loads but the server refuses its data, and says what to do.
      await page.waitForSelector("p.error");
      assert.match((await page.textContent("p.error")) ?? "", /API key/);
      errors.length = 0; // the browser logs the refused requests (401) as console errors
      await page.fill("#api-key", "lab-test-key");
      await page.press("#api-key", "Enter");
      await page.waitForSelector('input[data-vector="chat-vector"]');
      const { status, cols, speed } = await generateColumns(page);
      assert.equal(status, "done");
      assert.deepEqual(
        cols.map((c) => c.error),
        coeffs.map(() => null),
      );
      process.stdout.write(`# server-mode playground: ${speed}\n`);
      await page.screenshot({ path: await shotPath("lab-playground-server"), fullPage: true });
      const want = await nodeOracle(vectorFile, prompt, coeffs);
      assert.deepEqual(
        cols.map((c) => c.text),
        want.map((w) => w.text),
      );
      assert.deepEqual(errors, []);
    } finally {
      await server.close();
      await opened.engine.dispose();
    }
  });
});
