/**
 * The HTML report in headless Chromium: no console errors, every chart laid out with a nonzero size, and a
 * PNG screenshot (kept in $STEERLAB_SCREENSHOT_DIR when set, for a person to look at). Needs Debian's
 * chromium (`apt-get install -y chromium`); skipped with a message when /usr/bin/chromium is missing.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { buildReport } from "../../src/report/build.js";
import { writeReport } from "../../src/report/writers.js";
import { chromiumMissing, launchChromium, openPage } from "../helpers/chromium.js";
import { syntheticSweep } from "./fixture.js";

const skip = chromiumMissing("the screenshot test");

test("the report opens in headless Chromium without errors and its plots have size", {
  skip,
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "steerlab-shot-"));
  const browser = await launchChromium();
  try {
    const w = await writeReport(buildReport(syntheticSweep(3), { regime: { budget: 0.02, lambda: 1 } }), dir);
    const { page, errors } = await openPage(browser, { width: 1100, height: 900 });
    await page.goto(pathToFileURL(w.html).href);
    const boxes = await page.$$eval("figure.chart svg", (els) =>
      els.map((e) => {
        const b = e.getBoundingClientRect();
        return {
          id: e.parentElement?.id ?? "",
          w: b.width,
          h: b.height,
          paths: e.querySelectorAll("path").length,
        };
      }),
    );
    assert.deepEqual(errors, []);
    assert.equal(boxes.length, 9);
    for (const b of boxes) {
      assert.ok(b.w > 200 && b.h > 150, `${b.id}: ${b.w}x${b.h}`);
      assert.ok(b.paths > 5, `${b.id}: ${b.paths} paths`);
    }
    const keep = process.env.STEERLAB_SCREENSHOT_DIR;
    const out = keep ? join(keep, "report.png") : join(dir, "report.png");
    if (keep) await mkdir(keep, { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    assert.ok((await stat(out)).size > 50_000, "screenshot has content");
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
});
