/**
 * Headless Chromium for the browser tests (the HTML report, the web lab): Debian's binary driven by playwright-core,
 * launched the same way everywhere, and pages that record console errors and uncaught exceptions.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why a browser test cannot run here (`what`: "the screenshot test"), or false. */
export function chromiumMissing(what: string): string | false {
  return existsSync(CHROMIUM)
    ? false
    : `${CHROMIUM} not found: install it with \`apt-get install -y chromium\` to run ${what}`;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
}

/** A page that records console errors and uncaught exceptions. */
export async function openPage(
  browser: Browser,
  viewport: { width: number; height: number },
): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  return { page, errors };
}
