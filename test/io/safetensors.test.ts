import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError, SteerlabError } from "../../src/errors.js";
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  safetensorsShards,
  writeSafetensors,
  writeSafetensorsDir,
} from "../../src/io/safetensors.js";
import { gaussian, rng } from "../../src/model/random.js";
import { type Tensor, tensor } from "../../src/tensor.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-st-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(seed = 1): [string, Tensor][] {
  const g = gaussian(rng(seed));
  const t = (shape: number[]) => {
    const x = tensor(shape);
    for (let i = 0; i < x.data.length; i++) x.data[i] = g();
    return x;
  };
  return [
    ["a.weight", t([8, 5])],
    ["b.bias", t([7])],
    ["c", t([2, 3, 4])],
    ["empty", t([0, 3])],
  ];
}

/** A hand-built file: header object as given, then `data` bytes. */
function raw(header: unknown, data = new Uint8Array(0), lenOverride?: bigint): Uint8Array {
  const h = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function badFile(buf: Uint8Array, ...mustMention: string[]) {
  assert.throws(
    () => parseSafetensors(buf, "x.safetensors"),
    (e) => {
      assert.ok(isSteerlabError(e, "bad_file"), String(e));
      assert.ok(e.message.includes("x.safetensors"), e.message);
      for (const m of mustMention) assert.ok(e.message.includes(m), `"${m}" not in: ${e.message}`);
      return true;
    },
  );
}

test("F32 round trip is bit-exact, with metadata, in order", () => {
  const ts = sample();
  const file = join(dir, "a.safetensors");
  writeSafetensors(file, ts, { metadata: { format: "pt", note: "hi" } });
  const r = readSafetensors(file);
  assert.deepEqual(r.metadata, { format: "pt", note: "hi" });
  assert.deepEqual(
    [...r.tensors.keys()],
    ts.map(([n]) => n),
  );
  for (const [n, t] of ts) {
    assert.deepEqual(r.tensors.get(n)!.shape, t.shape);
    assert.deepEqual(r.tensors.get(n)!.data, t.data);
    assert.equal(r.dtypes.get(n), "F32");
  }
  // Header padded so the data section starts 8-aligned.
  const buf = encodeSafetensors(ts);
  assert.equal(Number(new DataView(buf.buffer).getBigUint64(0, true)) % 8, 0);
});

test("F16 and BF16 round trips stay within half an ulp", () => {
  for (const [dtype, rel] of [
    ["F16", 2 ** -11],
    ["BF16", 2 ** -8],
  ] as const) {
    const ts = sample(2);
    const r = parseSafetensors(encodeSafetensors(ts, { dtype }));
    for (const [n, t] of ts) {
      const got = r.tensors.get(n)!.data;
      t.data.forEach((x, i) => {
        assert.ok(Math.abs(got[i]! - x) <= Math.abs(x) * rel + 1e-7, `${dtype} ${n}[${i}]`);
      });
      assert.equal(r.dtypes.get(n), dtype);
    }
  }
});

test("sharded folders: index.json names every tensor and they read back", () => {
  const ts = sample(3);
  const sub = join(dir, "sharded");
  const names = writeSafetensorsDir(sub, ts, { shardBytes: 100 });
  assert.ok(names.length > 1);
  assert.ok(readdirSync(sub).includes("model.safetensors.index.json"));
  const { files, weightMap } = safetensorsShards(sub);
  assert.deepEqual(files, [...names].sort());
  for (const [n, t] of ts) {
    const r = readSafetensors(join(sub, weightMap!.get(n)!));
    assert.deepEqual(r.tensors.get(n)!.data, t.data);
  }
});

test("hostile headers: each a bad_file naming the file, tensor and field", () => {
  const data = new Uint8Array(16);
  badFile(raw({}, data, 1000n), "header length");
  badFile(raw({}, data, 200n * 1024n * 1024n), "header length");
  badFile(raw("{not json", data), "JSON");
  badFile(raw("[1,2]", data), "object");
  badFile(raw({ t: { dtype: "Q9", shape: [4], data_offsets: [0, 16] } }, data), "t", "dtype");
  badFile(raw({ t: { dtype: "F32", shape: [4], data_offsets: [0, 32] } }, data), "t", "data_offsets");
  badFile(raw({ t: { dtype: "F32", shape: [3], data_offsets: [0, 16] } }, data), "t", "data_offsets", "[3]");
  badFile(raw({ t: { dtype: "F32", shape: [4], data_offsets: [8, 4] } }, data), "t", "data_offsets");
  badFile(raw({ t: { dtype: "F32", shape: [-1], data_offsets: [0, 16] } }, data), "t", "shape");
  badFile(
    raw(
      {
        t: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
        u: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      },
      data,
    ),
    "overlap",
  );
  badFile(raw({ __metadata__: { a: 1 } }, data), "__metadata__");
  badFile(new Uint8Array(5), "header length");
});

test("an integer tensor is reported as unsupported when read", () => {
  const buf = raw({ ids: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, new Uint8Array(16));
  assert.throws(
    () => parseSafetensors(buf, "x.safetensors"),
    (e) => isSteerlabError(e, "unsupported"),
  );
});

/** Parse must either succeed or throw a SteerlabError: never a RangeError, TypeError or a hang. */
function parsesOrSteerlabError(buf: Uint8Array): "ok" | "error" {
  try {
    parseSafetensors(buf, "fuzz.safetensors");
    return "ok";
  } catch (e) {
    if (!(e instanceof SteerlabError)) throw e;
    return "error";
  }
}

test("fuzz: truncations and header byte flips give SteerlabErrors only", () => {
  const buf = encodeSafetensors(sample(4));
  const headerEnd = 8 + Number(new DataView(buf.buffer).getBigUint64(0, true));
  let errors = 0;
  for (let n = 0; n < buf.length; n += 3) if (parsesOrSteerlabError(buf.subarray(0, n)) === "error") errors++;
  assert.ok(errors > buf.length / 3 - 2, "every truncation should fail");
  const r = rng(11);
  for (let i = 0; i < 3000; i++) {
    const b = buf.slice();
    const at = Math.floor(r() * headerEnd);
    b[at] = Math.floor(r() * 256);
    parsesOrSteerlabError(b);
  }
});
