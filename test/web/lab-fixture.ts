/**
 * The web lab's test world: a real experiment on the demo chat model (vector extraction + a small sweep grid,
 * ~5 s), served by the real /lab routes on a loopback port, and headless Chromium (Debian's) to look at it.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { type Browser, chromium, type Page } from "playwright-core";
import { demoConfig } from "../../src/cli/commands/demo.js";
import { type ExperimentConfig, runExperiment } from "../../src/eval/experiment.js";
import { defaultWebDir, type LabOptions, labRoutes } from "../../src/serve/lab/routes.js";

export const CHROMIUM = "/usr/bin/chromium";
export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why the browser tests cannot run here, or false. */
export function skipReason(): string | false {
  if (!existsSync(CHROMIUM))
    return `${CHROMIUM} not found: install it with \`apt-get install -y chromium\` to run the web lab tests`;
  if (!existsSync(join(defaultWebDir(), "index.html")))
    return `the web lab is not built (${defaultWebDir()}): run npm run build`;
  return false;
}

/** Screenshots go to $STEERLAB_SCREENSHOT_DIR, else .cache/screenshots (gitignored), for a person to look at. */
export async function shotPath(name: string): Promise<string> {
  const dir = process.env.STEERLAB_SCREENSHOT_DIR ?? join(process.cwd(), ".cache", "screenshots");
  await mkdir(dir, { recursive: true });
  return join(dir, `${name}.png`);
}

/** The demo experiment cut down: the chat model only, 7 r_e values, 16 prompts per task. */
export function smallExperiment(): ExperimentConfig {
  const c = demoConfig();
  return {
    ...c,
    title: "web lab test sweep",
    models: c.models.filter((m) => m.name === "chat"),
    coeffs: [-30, -20, -10, 0, 10, 20, 30],
    tasks: (c.tasks as Record<string, unknown>[]).map((t) => ({ ...t, limit: 16 })),
  };
}

export async function makeRun(outDir: string): Promise<{ runDir: string; vectorFile: string }> {
  const res = await runExperiment(smallExperiment(), outDir, { threads: 1 });
  const run = res.runs[0]!;
  return { runDir: run.runDir, vectorFile: run.vectorFile };
}

export interface LabServer {
  url: string;
  close(): Promise<void>;
}

/** The lab mounted at /lab as the server mounts it (app.route("/lab", labRoutes(...))). */
export async function startLab(opts: LabOptions, mount?: (app: Hono) => void): Promise<LabServer> {
  const app = new Hono();
  app.route("/lab", labRoutes(opts));
  mount?.(app);
  const server = await new Promise<ReturnType<typeof serve>>((ok) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => ok(s));
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/lab/`,
    close: () =>
      new Promise((ok) => {
        server.close(() => ok());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
}

/** A page that records console errors and uncaught exceptions. */
export async function openPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  return { page, errors };
}

/** Chart figures: id, laid-out size and drawn paths (ECharts' SVG renderer). */
export async function charts(page: Page): Promise<{ id: string; w: number; h: number; paths: number }[]> {
  return page.$$eval("figure.chart", (els) =>
    els.map((e) => {
      const svg = e.querySelector("svg");
      const b = svg?.getBoundingClientRect();
      return {
        id: e.id,
        w: b?.width ?? 0,
        h: b?.height ?? 0,
        paths: svg?.querySelectorAll("path").length ?? 0,
      };
    }),
  );
}

/** Set an input's value and fire "input", as a user's drag or typing does (Preact listens to onInput). */
export async function setInput(page: Page, selector: string, value: string): Promise<void> {
  await page.evaluate(
    `(() => { const i = document.querySelector(${JSON.stringify(selector)}); i.value = ${JSON.stringify(value)};` +
      ` i.dispatchEvent(new Event("input", { bubbles: true })); })()`,
  );
}
