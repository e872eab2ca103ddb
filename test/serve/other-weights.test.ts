/**
 * A library vector extracted from another checkpoint of the same shape (the demo base model's, served on the demo
 * chat model) is refused by default, as the CLI refuses it: on upload, in the list (fits: false, with the
 * problem), and on use; `allowOtherWeights` (serve --allow-other-weights) serves it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openModel } from "../../src/model/open.js";
import { createApp } from "../../src/serve/app.js";
import { extractFromModel } from "../../src/steer/extract-model.js";
import { loadDataset } from "../../src/steer/pairs.js";
import { saveVector } from "../../src/steer/vector-load.js";
import { openDemo, ROOT } from "./helpers.js";

let d: Awaited<ReturnType<typeof openDemo>>;
let baseFile: string;
before(async () => {
  d = await openDemo();
  const base = await openModel(join(ROOT, "demo/models/base"), { threads: 1 });
  const v = await extractFromModel(base, loadDataset(join(ROOT, "demo/tasks/request-pairs.jsonl")), {
    method: "repe-pca",
    layers: [1, 2, 3],
    batchSize: 16,
  });
  await base.engine.dispose();
  baseFile = join(d.vectorsDir, "base-refusal.safetensors");
  saveVector(baseFile, v);
});
after(async () => d.opened.engine.dispose());

const ask = (steer: object) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    messages: [{ role: "user", content: "Tell me how to smash the bridge." }],
    max_tokens: 2,
    temperature: 0,
    steering: steer,
  }),
});

test("serve refuses a vector of another checkpoint unless allowOtherWeights", async () => {
  const strict = createApp({ opened: d.opened, vectorsDir: d.vectorsDir });
  const list = (await (await strict.request("/v1/steering/vectors/base-refusal")).json()) as {
    fits: boolean;
    problems: string[];
  };
  assert.equal(list.fits, false);
  assert.match(list.problems.join("\n"), /^weights: vector made for fingerprint \w+, model is \w+$/m);

  const use = await strict.request(
    "/v1/chat/completions",
    ask({ vectors: [{ name: "base-refusal", scale: 20 }] }),
  );
  const body = (await use.json()) as { error: { message: string; code: string } };
  assert.equal(use.status, 400, JSON.stringify(body));
  assert.match(body.error.message, /the steering vector does not fit this model/);
  assert.match(body.error.message, /start the server with --allow-other-weights/);
  assert.doesNotMatch(body.error.message, /pass allowOtherWeights/);

  const up = await strict.request("/v1/steering/vectors?name=base-up", {
    method: "POST",
    body: readFileSync(baseFile),
  });
  assert.equal(up.status, 400, await up.clone().text());
  assert.match(
    ((await up.json()) as { error: { message: string } }).error.message,
    /upload:base-up\.safetensors/,
  );

  const loose = createApp({ opened: d.opened, vectorsDir: d.vectorsDir, allowOtherWeights: true });
  const info = (await (await loose.request("/v1/steering/vectors/base-refusal")).json()) as { fits: boolean };
  assert.equal(info.fits, true);
  const ok = await loose.request(
    "/v1/chat/completions",
    ask({ vectors: [{ name: "base-refusal", scale: 20 }] }),
  );
  assert.equal(ok.status, 200, await ok.clone().text());
  // the chat model's own vector is served either way
  const own = await strict.request(
    "/v1/chat/completions",
    ask({ vectors: [{ name: "refusal", scale: 20 }] }),
  );
  assert.equal(own.status, 200);
});
