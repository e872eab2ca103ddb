import assert from "node:assert/strict";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import { isSteerlabError } from "../../src/errors.js";
import { GraphBuilder } from "../../src/model/graph/builder.js";
import { attnGraph, weightFn } from "../../src/model/graph/graphs.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";

test("node names are hierarchical and duplicates throw", () => {
  const g = GraphBuilder.create();
  const x = g.input("x", "float32", ["n", 2]);
  const s = g.scope("blocks.3").scope("attn");
  s.op("Relu", [x]);
  assert.deepEqual(g.nodeNames, ["/blocks.3/attn/Relu"]);
  assert.throws(
    () => s.op("Relu", [x]),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => g.input("x", "float32", [1]),
    (e) => isSteerlabError(e, "bad_input"),
  );
  g.weight("w", [2], new Float32Array(2));
  assert.throws(
    () => g.weight("w", [2], new Float32Array(2)),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => g.weight("w2", [3], new Float32Array(2)),
    (e) => isSteerlabError(e, "bad_tensor"),
  );
});

test("a built graph runs in onnxruntime, with weights inline or as in-memory external data", async () => {
  const g = GraphBuilder.create();
  const x = g.input("x", "float32", ["n", 2]);
  const w = g.weight("w", [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6]));
  const b = g.weight("b", [3], Float32Array.from([0.5, -1, 2]));
  const y = g.scope("lin").op("Add", [g.scope("lin").op("MatMul", [x, w]), b]);
  g.output(y, "y", "float32", ["n", 3]);
  assert.deepEqual(
    g.nodeNames,
    ["/lin/MatMul", "/lin/Add"],
    "the output is renamed in place, no Identity copy",
  );
  const inline = g.encode("t");
  const external = g.encode("t", { external: true });
  assert.equal(inline.files.length, 0);
  assert.deepEqual(
    external.files.map((f) => [f.path, f.data.byteLength]),
    [
      ["w", 24],
      ["b", 12],
    ],
  );
  for (const e of [inline, external]) {
    const s = await ort.InferenceSession.create(e.bytes, { externalData: e.files });
    const r = await s.run({ x: new ort.Tensor("float32", Float32Array.from([1, 1, 2, 0]), [2, 2]) });
    assert.deepEqual(Array.from(r.y!.data as Float32Array), [5.5, 6, 11, 2.5, 3, 8]);
    await s.release();
  }
});

test("block graphs name nodes by block and op group, and hold each weight once", () => {
  const c = TINY_CONFIGS.llama!;
  const w = randomWeights(c, 1);
  const g = attnGraph(c, weightFn(w), 2);
  const text = new TextDecoder("latin1").decode(g.builder.encode(g.name).bytes);
  assert.ok(text.includes("/blocks.2/attn/qkv_proj/gemm/Gemm"));
  assert.ok(text.includes("/blocks.2/attn_norm/SimplifiedLayerNormalization"));
  const expected = ["attn_norm.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight"]
    .map((n) => w.get(`blocks.2.${n}`)!.data.byteLength)
    .reduce((a, b) => a + b, 0);
  assert.equal(g.weightBytes, expected);
});
