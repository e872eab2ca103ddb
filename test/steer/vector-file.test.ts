import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { encodeSafetensors } from "../../src/io/safetensors.js";
import type { ModelConfig } from "../../src/model/config.js";
import { extract, MomentExtractor } from "../../src/steer/extract.js";
import type { LayerData } from "../../src/steer/methods/method.js";
import { checkVectorFits, makeVector, vectorFromExtraction } from "../../src/steer/vector.js";
import { decodeVector, encodeVector, readVector, writeVector } from "../../src/steer/vector-file.js";
import { tensor } from "../../src/tensor.js";

const config: ModelConfig = {
  arch: "llama",
  vocabSize: 64,
  hiddenSize: 4,
  nLayers: 6,
  nHeads: 2,
  nKvHeads: 1,
  headDim: 2,
  intermediateSize: 8,
  normEps: 1e-6,
  maxPositions: 128,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

function fitted() {
  const pos = Float32Array.from([3, 0, 1, 5, -1, 0, 0, 5, 1, 1, 1, 5, 1, -1, 2, 5]);
  const neg = Float32Array.from([0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 5]);
  const d: LayerData = {
    kind: "pairs",
    positive: { data: pos, n: 4, dim: 4 },
    negative: { data: neg, n: 4, dim: 4 },
  };
  const r = extract(
    "repe-pca",
    new Map([
      [2, d],
      [3, d],
    ]),
    { folds: 0 },
  );
  return vectorFromExtraction(r, {
    model: config,
    fingerprint: "sha256:abc",
    readPosition: "last",
    dataset: { hash: "sha256:def", size: 4 },
  });
}

describe("vector file", () => {
  it("round-trips directions and every metadata field, through a file too", () => {
    const v = fitted();
    const back = decodeVector(encodeVector(v));
    assert.deepEqual([...back.directions.keys()], [2, 3]);
    for (const l of [2, 3]) assert.deepEqual(back.directions.get(l), v.directions.get(l));
    assert.deepEqual(back.model, { arch: "llama", hiddenSize: 4, nLayers: 6, fingerprint: "sha256:abc" });
    assert.equal(back.site, "resid_post");
    assert.equal(back.method, "repe-pca");
    assert.equal(back.readPosition, "last");
    assert.deepEqual(back.dataset, { hash: "sha256:def", size: 4 });
    assert.equal(back.scale, "unit");
    assert.equal(back.signConvention, v.signConvention);
    assert.equal(back.createdBy, v.createdBy);
    assert.deepEqual(back.diagnostics.get(2), v.diagnostics.get(2));
    assert.deepEqual(back.methodInfo, v.methodInfo);
    assert.equal(back.methodInfo!.get(2)!.converged, true);
    assert.equal(back.diagnostics.get(3)!.heldOutAccuracy, null);
    const dir = mkdtempSync(join(tmpdir(), "steerlab-vec-"));
    try {
      const p = join(dir, "v.safetensors");
      writeVector(p, v);
      const f = readVector(p);
      assert.deepEqual(f.directions.get(3), v.directions.get(3));
      // self-describing: a plain safetensors reader sees the layer convention and the per-layer norms
      const raw = readFileSync(p);
      const headerLen = Number(raw.readBigUInt64LE(0));
      const header = JSON.parse(raw.subarray(8, 8 + headerLen).toString("utf8"));
      const body = JSON.parse(header.__metadata__.steerlab);
      assert.equal(body.layer_base, "block0");
      assert.ok(Math.abs(body.norms["2"] - 1) < 1e-6, "unit norm recorded");
      assert.deepEqual(header["direction.2"].shape, [4]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses files that are not steerlab vectors or are inconsistent", () => {
    const plain = encodeSafetensors([["direction.1", tensor([4])]]);
    assert.throws(
      () => decodeVector(plain, "x.safetensors"),
      (e) => isSteerlabError(e, "bad_file") && /x\.safetensors/.test(e.message),
    );
    const v = fitted();
    const meta = JSON.parse(JSON.stringify({ layers: [2, 3] }));
    const enc = encodeSafetensors(
      [
        ["direction.2", tensor([4], v.directions.get(2)!)],
        ["bias", tensor([4])],
      ],
      {
        metadata: {
          format: "steerlab.vector",
          format_version: "1",
          steerlab: JSON.stringify({ site: "resid_post", layer_base: "block0", hidden_size: 4, ...meta }),
        },
      },
    );
    assert.throws(
      () => decodeVector(enc),
      (e) =>
        isSteerlabError(e, "bad_file") &&
        /unexpected tensor "bias"/.test(e.message) &&
        /lists layers/.test(e.message),
    );
  });
});

describe("vector file: streamed fits", () => {
  it("keeps non-finite diagnostics (no second moments) as NaN through JSON null", () => {
    const ex = new MomentExtractor("mean-diff");
    const pos = { data: Float32Array.from([1, 0, 0, 0, 2, 1, 0, 0]), n: 2, dim: 4 };
    const neg = { data: new Float32Array(8), n: 2, dim: 4 };
    ex.add(0, pos, neg);
    ex.fit();
    ex.vote(0, pos, neg);
    const v = vectorFromExtraction(ex.finish(), { model: config });
    assert.ok(Number.isNaN(v.diagnostics.get(0)!.directionVariance), "no variance without second moments");
    const back = decodeVector(encodeVector(v));
    const d = back.diagnostics.get(0)!;
    assert.ok(Number.isNaN(d.directionVariance) && Number.isNaN(d.explainedVariance), "NaN restored");
    assert.equal(d.heldOutAccuracy, null);
    assert.equal(d.trainAccuracy, 1);
  });
});

describe("checkVectorFits", () => {
  it("accepts the model it was made for", () => {
    checkVectorFits(fitted(), config, "sha256:abc");
  });

  it("says why a vector does not fit: hidden size, layer count, architecture, weights", () => {
    const v = fitted();
    const other: ModelConfig = { ...config, arch: "qwen2", hiddenSize: 8, nLayers: 3 };
    assert.throws(
      () => checkVectorFits(v, other),
      (e) =>
        isSteerlabError(e, "mismatch") &&
        /hidden size: vector 4, model 8/.test(e.message) &&
        /layers 3 do not exist/.test(e.message) &&
        /layer count: vector made for 6, model has 3/.test(e.message) &&
        /architecture: vector made for llama, model is qwen2/.test(e.message),
    );
    assert.throws(
      () => checkVectorFits(v, config, "sha256:other"),
      (e) => isSteerlabError(e, "mismatch") && /fingerprint/.test(e.message),
    );
    checkVectorFits(v, config, "sha256:other", { allowOtherWeights: true });
    const bare = makeVector(new Map([[9, new Float32Array(4)]]));
    assert.throws(() => checkVectorFits(bare, config), /layers 9 do not exist/);
  });
});
