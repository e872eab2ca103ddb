import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { loadModel } from "../../src/model/load.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-load-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("loadModel: a folder is HF, a .gguf file is GGUF, anything else a clear error", async () => {
  const t = writeTinyModels(dir, "qwen2");
  const h = await loadModel(t.hfDir);
  const g = await loadModel(t.ggufFile);
  assert.equal(h.source.format, "hf");
  assert.equal(g.source.format, "gguf");
  assert.equal(h.source.path, t.hfDir);
  assert.equal(h.fingerprint, g.fingerprint);
  const other = join(dir, "model.bin");
  writeFileSync(other, "x");
  await assert.rejects(
    loadModel(other),
    (e) => isSteerlabError(e, "unsupported") && e.message.includes(other),
  );
  await assert.rejects(loadModel(join(dir, "nope")), (e) => isSteerlabError(e, "not_found"));
  const empty = mkdtempSync(join(dir, "empty-"));
  await assert.rejects(
    loadModel(empty),
    (e) => isSteerlabError(e, "not_found") && e.message.includes("config.json"),
  );
  const notGguf = join(dir, "fake.gguf");
  writeFileSync(notGguf, "definitely not gguf");
  await assert.rejects(
    loadModel(notGguf),
    (e) => isSteerlabError(e, "bad_file") && e.message.includes("magic"),
  );
});
