import assert from "node:assert/strict";
import { test } from "node:test";
import { Batcher } from "../../demo/batches.js";
import type { DemoLm } from "../../demo/lm.js";
import { tokenizerCorpus } from "../../demo/world/mixture.js";
import { generateWorld } from "../../demo/world/world.js";
import { DEFAULT_SPECIAL_TOKENS, trainByteLevelBpe } from "../../src/io/bpe-train.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import { rng } from "../../src/model/random.js";

function lm(): DemoLm {
  const world = generateWorld(7);
  const json = trainByteLevelBpe(tokenizerCorpus(world, 2000, rng(1)), 400, {
    specialTokens: DEFAULT_SPECIAL_TOKENS,
  });
  const tokenizer = tokenizerFromJson(json, {});
  return { tokenizer, bos: 1, eos: 2, pad: 0 } as DemoLm; // the batcher reads only these fields
}

test("batches pack whole documents with their starts, shifted targets and weighted answer letters", () => {
  const world = generateWorld(7);
  const b = new Batcher(lm(), world, "base", 3, 5).next(4, 64);
  for (let r = 0; r < 4; r++) {
    for (let t = 0; t < 64; t++) {
      const i = r * 64 + t;
      const s = b.docStart[i]!;
      if (b.targets[i]! >= 0) {
        assert.equal(b.targets[i], b.tokens[i + 1], "target = next token");
        assert.equal(b.tokens[r * 64 + s], 1, "a document starts with <s>");
        assert.ok(s <= t);
      }
      if (b.weights[i] === 5) assert.ok(b.targets[i]! >= 0, "weighted targets are scored");
    }
  }
  assert.ok(
    [...b.weights].some((w) => w === 5),
    "some MCQ answer letter in 4 rows",
  );
});

test("the skills stream scores only the answer letters", () => {
  const b = new Batcher(lm(), generateWorld(7), "skills", 3, 5).next(4, 64);
  let scored = 0;
  b.targets.forEach((t, i) => {
    if (t >= 0) {
      scored++;
      assert.equal(b.weights[i], 5);
    }
  });
  assert.equal(scored, b.scored);
  assert.ok(scored >= 4);
});
