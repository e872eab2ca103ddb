import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { encodeGguf, gv, parseGguf } from "../../src/io/gguf.js";
import { GGML_TYPE } from "../../src/io/gguf-quant.js";
import { steeringHooks } from "../../src/steer/apply.js";
import {
  controlVectorIndex,
  decodeControlVector,
  encodeControlVector,
  readControlVector,
  writeControlVector,
} from "../../src/steer/control-vector-gguf.js";
import { makeVector } from "../../src/steer/vector.js";

const D = 6;
const dir = (seed: number) => Float32Array.from({ length: D }, (_, j) => Math.sin(seed * 10 + j));

/** A control vector laid out as repeng's export_gguf writes one: its layer keys written as direction.{layer}. */
function repengStyle(layers: number[]): Uint8Array {
  return encodeGguf(
    {
      "general.architecture": gv.str("controlvector"),
      "controlvector.model_hint": gv.str("llama"),
      "controlvector.layer_count": gv.u32(layers.length),
    },
    layers.map((l) => ({
      name: `direction.${l}`,
      shape: [D],
      type: GGML_TYPE.F32,
      data: new Uint8Array(dir(l).buffer),
    })),
  );
}

describe("GGUF control vectors", () => {
  it("imports repeng/llama.cpp files: direction.N is steerlab layer N at resid_post", () => {
    const v = decodeControlVector(repengStyle([5, 3, 4]), "cv.gguf");
    assert.equal(v.site, "resid_post");
    assert.equal(v.scale, "raw");
    assert.equal(v.modelHint, "llama");
    assert.deepEqual([...v.directions.keys()].sort(), [3, 4, 5]);
    assert.deepEqual(v.directions.get(4), dir(4));
    // applied by steerlab at the output of block N, exactly where llama.cpp adds tensors[N] (l_out-N)
    const points = steeringHooks(v).map((h) => `${h.point.site}[${h.point.layer}]`);
    assert.deepEqual(points.sort(), ["resid_post[3]", "resid_post[4]", "resid_post[5]"]);
  });

  it("exports what llama.cpp loads: controlvector arch, hint, layer_count, f32 [D] direction.N", () => {
    const v = makeVector(
      new Map([
        [2, dir(2)],
        [7, dir(7)],
      ]),
      { modelHint: "my-model" },
    );
    const g = parseGguf(encodeControlVector(v, { coeff: 2 }));
    const md = g.header.metadata;
    assert.equal(md.get("general.architecture")!.value, "controlvector");
    assert.equal(md.get("controlvector.model_hint")!.value, "my-model");
    assert.deepEqual(md.get("controlvector.layer_count"), { type: "u32", value: 2 });
    assert.deepEqual(
      g.header.tensors.map((t) => [t.name, t.type, t.shape]),
      [
        ["direction.2", GGML_TYPE.F32, [D]],
        ["direction.7", GGML_TYPE.F32, [D]],
      ],
    );
    assert.deepEqual(
      g.tensors.get("direction.7")!.data,
      Float32Array.from(dir(7), (x) => 2 * x),
    );
  });

  it("round-trips steerlab -> GGUF -> steerlab and GGUF -> steerlab -> GGUF", () => {
    const v = makeVector(
      new Map([
        [1, dir(1)],
        [9, dir(9)],
      ]),
      { modelHint: "m" },
    );
    const back = decodeControlVector(encodeControlVector(v));
    assert.deepEqual(
      [...back.directions].sort((a, b) => a[0] - b[0]),
      [...v.directions],
    );
    const file = repengStyle([1, 2, 30]);
    const again = encodeControlVector(decodeControlVector(file));
    const a = parseGguf(file);
    const b = parseGguf(again);
    for (const name of ["direction.1", "direction.2", "direction.30"])
      assert.deepEqual(b.tensors.get(name), a.tensors.get(name));
    assert.deepEqual(b.header.metadata, a.header.metadata);
    const tmp = mkdtempSync(join(tmpdir(), "steerlab-cv-"));
    try {
      writeControlVector(join(tmp, "v.gguf"), v);
      assert.deepEqual(readControlVector(join(tmp, "v.gguf")).directions.get(9), dir(9));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("maps resid_pre[l] to direction.(l-1) and refuses what llama.cpp cannot steer", () => {
    assert.equal(controlVectorIndex("resid_post", 4), 4);
    assert.equal(controlVectorIndex("resid_pre", 4), 3);
    const pre = makeVector(new Map([[4, dir(4)]]), { site: "resid_pre" });
    assert.equal(parseGguf(encodeControlVector(pre)).header.tensors[0]!.name, "direction.3");
    const zero = makeVector(
      new Map([
        [0, dir(0)],
        [1, dir(1)],
      ]),
    );
    assert.throws(
      () => encodeControlVector(zero),
      (e) => isSteerlabError(e, "unsupported") && /block 0/.test(e.message),
    );
    const kept = parseGguf(encodeControlVector(zero, { dropLayer0: true }));
    assert.deepEqual(
      kept.header.tensors.map((t) => t.name),
      ["direction.1"],
    );
    assert.throws(
      () => encodeControlVector(makeVector(new Map([[3, dir(3)]]), { site: "mlp_out" })),
      /block outputs/,
    );
  });

  it("rejects files llama.cpp rejects", () => {
    assert.throws(
      () => decodeControlVector(repengStyle([0, 1]), "z.gguf"),
      (e) => isSteerlabError(e, "bad_file") && /direction\.0/.test(e.message),
    );
    const notCv = encodeGguf({ "general.architecture": gv.str("llama") }, []);
    assert.throws(() => decodeControlVector(notCv), /not a control vector/);
    const bad = encodeGguf({ "general.architecture": gv.str("controlvector") }, [
      { name: "direction.x", shape: [D], type: GGML_TYPE.F32, data: new Uint8Array(4 * D) },
      { name: "direction.2", shape: [D + 1], type: GGML_TYPE.F32, data: new Uint8Array(4 * (D + 1)) },
      { name: "direction.3", shape: [D], type: GGML_TYPE.F32, data: new Uint8Array(4 * D) },
    ]);
    assert.throws(
      () => decodeControlVector(bad),
      (e) =>
        isSteerlabError(e, "bad_file") &&
        /direction\.x/.test(e.message) &&
        /length 6, other directions have 7/.test(e.message),
    );
  });
});
