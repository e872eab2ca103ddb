/** The public entry exposes the library API the README documents. */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as steerlab from "../src/index.js";

test("the package entry exports the documented API", () => {
  for (const name of [
    "openModel",
    "loadModel",
    "generate",
    "streamGenerate",
    "nextTokenLogprobs",
    "extractFromModel",
    "steeringHooks",
    "loadDataset",
    "loadVector",
    "saveVector",
    "sweepToDir",
    "mergeRuns",
    "queueSweep",
    "startSweepWorker",
    "queueStatus",
    "fitCurve",
    "buildReport",
    "writeReport",
    "SteerlabError",
    "createApp",
    "startServer",
    "streamGenerateRows",
    "ForwardDriver",
    "spansFor",
  ]) {
    assert.equal(typeof (steerlab as Record<string, unknown>)[name], "function", name);
  }
  assert.deepEqual([...steerlab.SITES], ["resid_pre", "attn_out", "mlp_out", "resid_post"]);
});
