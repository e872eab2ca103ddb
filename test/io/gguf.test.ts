import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError, SteerlabError } from "../../src/errors.js";
import {
  encodeGguf,
  type GgufTensorOut,
  type GgufValue,
  gv,
  parseGguf,
  readGguf,
  writeGguf,
} from "../../src/io/gguf.js";
import { GGML_TYPE, quantize } from "../../src/io/gguf-quant.js";
import { gaussian, rng } from "../../src/model/random.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-gguf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const META: Record<string, GgufValue> = {
  "general.architecture": gv.str("llama"),
  u8: { type: "u8", value: 250 },
  i8: { type: "i8", value: -5 },
  u16: { type: "u16", value: 65000 },
  i16: { type: "i16", value: -30000 },
  u32: gv.u32(4000000000),
  i32: gv.i32(-2000000000),
  f32: gv.f32(0.5),
  bool: gv.bool(true),
  str: gv.str("héllo ✓"),
  u64: { type: "u64", value: 2n ** 60n },
  i64: { type: "i64", value: -7 },
  f64: { type: "f64", value: Math.PI },
  strs: gv.arr("str", ["a", "", "ß"]),
  ints: gv.arr("i32", [1, -2, 3]),
  nested: { type: "array", itemType: "array", value: [gv.arr("u8", [1, 2]), gv.arr("str", ["x"])] },
};

function values(n: number, seed: number): Float32Array {
  const g = gaussian(rng(seed));
  return new Float32Array(n).map(() => g());
}

function tensors(): { out: GgufTensorOut[]; src: Float32Array[] } {
  const types = ["F32", "F16", "BF16", "Q8_0", "Q4_0"] as const;
  const src = types.map((_, i) => values(3 * 64, i + 1));
  const out = types.map((t, i) => ({
    name: `t.${t}`,
    shape: [3, 64],
    type: GGML_TYPE[t],
    data: quantize(GGML_TYPE[t], src[i]!),
  }));
  out.push({ name: "vec", shape: [5], type: GGML_TYPE.F32, data: quantize(GGML_TYPE.F32, values(5, 9)) });
  return { out, src };
}

test("metadata of every type and tensors of every writable type round-trip", () => {
  const { out, src } = tensors();
  const file = join(dir, "a.gguf");
  writeGguf(file, META, out);
  const r = readGguf(file);
  assert.equal(r.header.version, 3);
  assert.deepEqual(
    [...r.header.metadata.entries()],
    Object.entries(META).map(([k, v]) => [k, v.type === "f32" ? v : v]),
  );
  assert.deepEqual(
    r.header.tensors.map((t) => [t.name, t.shape]),
    out.map((t) => [t.name, [...t.shape]]),
  );
  assert.deepEqual(r.tensors.get("t.F32")!.data, src[0]);
  const tol = { "t.F16": 2 ** -11, "t.BF16": 2 ** -8 };
  for (const [name, rel] of Object.entries(tol)) {
    const i = name === "t.F16" ? 1 : 2;
    r.tensors.get(name)!.data.forEach((x, j) => {
      assert.ok(Math.abs(x - src[i]![j]!) <= Math.abs(src[i]![j]!) * rel);
    });
  }
  // Block types: error within a step of each block's scale (amax/127 for Q8_0, amax/8 for Q4_0).
  for (const [name, i, steps] of [
    ["t.Q8_0", 3, 127],
    ["t.Q4_0", 4, 8],
  ] as const) {
    const got = r.tensors.get(name)!.data;
    for (let b = 0; b < got.length; b += 32) {
      const amax = Math.max(...src[i]!.subarray(b, b + 32).map(Math.abs));
      for (let j = b; j < b + 32; j++) assert.ok(Math.abs(got[j]! - src[i]![j]!) <= (1.01 * amax) / steps);
    }
  }
  for (const t of r.header.tensors) assert.equal(t.offset % 32, 0);
});

test("custom alignment and GGUF v2 files read", () => {
  const { out } = tensors();
  const buf = encodeGguf({ ...META, "general.alignment": gv.u32(64) }, out);
  const r = parseGguf(buf);
  assert.equal(r.header.alignment, 64);
  for (const t of r.header.tensors) assert.equal(t.offset % 64, 0);
  const v2 = buf.slice();
  v2[4] = 2;
  assert.equal(parseGguf(v2).header.version, 2);
  assert.deepEqual(parseGguf(v2).tensors.get("vec")!.data, r.tensors.get("vec")!.data);
});

/** The header bytes of a file with one small tensor, built by hand for targeted corruption. */
function small(): Uint8Array {
  return encodeGguf({ "general.architecture": gv.str("llama") }, [
    { name: "w", shape: [2, 32], type: GGML_TYPE.Q8_0, data: quantize(GGML_TYPE.Q8_0, values(64, 3)) },
  ]);
}

function setU64(b: Uint8Array, at: number, v: bigint): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setBigUint64(at, v, true);
  return c;
}

function rejects(buf: Uint8Array, code: "bad_file" | "unsupported", ...mention: string[]) {
  assert.throws(
    () => parseGguf(buf, "x.gguf"),
    (e) => {
      assert.ok(isSteerlabError(e, code), String(e));
      assert.ok(e.message.includes("x.gguf"));
      for (const m of mention) assert.ok(e.message.includes(m), `"${m}" not in ${e.message}`);
      return true;
    },
  );
}

test("hostile files: clean errors naming the field", () => {
  const b = small();
  const bad = b.slice();
  bad[0] = 0x47 ^ 1;
  rejects(bad, "bad_file", "magic");
  rejects(setU64(b, 8, 2n ** 62n), "bad_file", "tensor count"); // absurd counts
  rejects(setU64(b, 16, 2n ** 40n), "bad_file", "metadata count");
  // key length (first kv at byte 24) larger than the file
  rejects(setU64(b, 24, 2n ** 50n), "bad_file", "string length");
  const badType = b.slice();
  new DataView(badType.buffer).setUint32(24 + 8 + "general.architecture".length, 99, true);
  rejects(badType, "bad_file", "value type");
  // 68 bytes of Q8_0 data + 28 bytes of padding end the file: cut into the data.
  rejects(b.subarray(0, b.length - 40), "bad_file", "w", "past the end");
  // header 24 | kv: key (8 + 20) + type 4 + value (8 + 5) | info: name (8 + 1) + n_dims 4 + ne 16 | type
  const typeAt = 24 + 8 + 20 + 4 + 8 + 5 + 8 + 1 + 4 + 16;
  assert.equal(b[typeAt], GGML_TYPE.Q8_0);
  const unk = b.slice();
  unk[typeAt] = 77;
  rejects(unk, "unsupported", "w", "77");
  const v9 = b.slice();
  v9[4] = 9;
  rejects(v9, "bad_file", "version");
});

function parsesOrSteerlabError(buf: Uint8Array): void {
  try {
    parseGguf(buf, "fuzz.gguf");
  } catch (e) {
    if (!(e instanceof SteerlabError)) throw e;
  }
}

test("fuzz: every truncation fails cleanly; random header flips never crash", () => {
  const buf = encodeGguf(
    {
      "general.architecture": gv.str("llama"),
      "tokenizer.ggml.tokens": gv.arr("str", ["a", "b", "c"]),
      s: gv.arr("f32", [1, 2]),
    },
    tensors().out,
  );
  // The last tensor (20 bytes of "vec") is followed by 12 bytes of padding: cutting those is harmless.
  for (let n = 0; n < buf.length - 12; n += 7) {
    assert.throws(
      () => parseGguf(buf.subarray(0, n), "t.gguf"),
      (e) => e instanceof SteerlabError,
    );
  }
  const dataStart = parseGguf(buf).header.dataStart;
  const r = rng(5);
  for (let i = 0; i < 4000; i++) {
    const b = buf.slice();
    for (let k = 0; k < 1 + Math.floor(r() * 3); k++) b[Math.floor(r() * dataStart)] = Math.floor(r() * 256);
    parsesOrSteerlabError(b);
  }
});
