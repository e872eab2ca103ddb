import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import {
  datasetHash,
  loadDataset,
  loadLabelled,
  loadPairs,
  parseDataset,
  renderMember,
} from "../../src/steer/pairs.js";

describe("JSONL datasets", () => {
  it("reads contrastive pairs with optional prompt and template, skipping blank lines", () => {
    const d = parseDataset(
      '{"positive":"yes","negative":"no"}\n\n{"positive":"a","negative":"b","prompt":"Q: ","template":"chat"}\r\n',
      "p.jsonl",
    );
    assert.equal(d.kind, "pairs");
    assert.deepEqual(d.items, [
      { positive: "yes", negative: "no" },
      { positive: "a", negative: "b", prompt: "Q: ", template: "chat" },
    ]);
    assert.match(d.hash, /^sha256:[0-9a-f]{64}$/);
  });

  it("reads labelled sets in several label spellings", () => {
    const d = parseDataset(
      ['{"text":"x","label":1}', '{"text":"y","label":false}', '{"text":"z","label":"positive"}'].join("\n"),
      "l.jsonl",
    );
    assert.equal(d.kind, "labelled");
    assert.deepEqual(
      d.items.map((e) => ("positive" in e && typeof e.positive === "boolean" ? e.positive : null)),
      [true, false, true],
    );
  });

  it("names the file and every bad line", () => {
    const text = [
      '{"positive":"a","negative":"b"}',
      "{not json",
      '{"positive":"only"}',
      '{"positive":"same","negative":"same"}',
      '{"text":"t","label":1}',
      '{"positive":"a","negative":"b","extra":1}',
      '{"positive":"a","negative":"b","template":"no placeholder"}',
    ].join("\n");
    assert.throws(
      () => parseDataset(text, "bad.jsonl"),
      (e) =>
        isSteerlabError(e, "bad_file") &&
        /file: bad\.jsonl/.test(e.message) &&
        /bad\.jsonl:2: not valid JSON/.test(e.message) &&
        /bad\.jsonl:3: unpaired data/.test(e.message) &&
        /bad\.jsonl:4: identical members/.test(e.message) &&
        /bad\.jsonl:5: a labelled line in a pairs file/.test(e.message) &&
        /bad\.jsonl:6: unknown key "extra"/.test(e.message) &&
        /bad\.jsonl:7: "template"/.test(e.message),
    );
  });

  it("rejects empty sets and one-label sets", () => {
    assert.throws(
      () => parseDataset("\n \n", "e.jsonl"),
      (e) => isSteerlabError(e, "bad_file") && /empty/.test(e.message),
    );
    assert.throws(
      () => parseDataset('{"text":"a","label":1}\n{"text":"b","label":1}', "one.jsonl"),
      /both labels.*2 positive, 0 negative/,
    );
  });

  it("loads from files and checks the kind asked for", () => {
    const dir = mkdtempSync(join(tmpdir(), "steerlab-pairs-"));
    try {
      const p = join(dir, "p.jsonl");
      writeFileSync(p, '{"positive":"yes","negative":"no"}\n');
      assert.equal(loadPairs(p).length, 1);
      assert.throws(
        () => loadLabelled(p),
        (e) => isSteerlabError(e, "bad_file") && e.message.includes(p),
      );
      assert.throws(
        () => loadDataset(join(dir, "missing.jsonl")),
        (e) => isSteerlabError(e, "not_found"),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("hashes content and order, and renders members", () => {
    const a = { positive: "x", negative: "y" };
    const b = { positive: "y", negative: "x" };
    assert.equal(
      datasetHash([a, b]),
      datasetHash([{ negative: "y", positive: "x" }, b]),
      "key order does not matter",
    );
    assert.notEqual(datasetHash([a, b]), datasetHash([b, a]));
    assert.equal(renderMember("yes", "Q? ", undefined), "Q? yes");
    assert.equal(renderMember("yes", "Q?", "[{prompt}] {text}!"), "[Q?] yes!");
    assert.equal(
      renderMember("yes", "Q?", "chat", (p, t) => `<u>${p}</u><a>${t}`),
      "<u>Q?</u><a>yes",
    );
    assert.throws(() => renderMember("yes", "Q?", "chat"), /chat template/);
  });
});
