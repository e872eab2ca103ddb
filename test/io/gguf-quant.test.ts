/**
 * Dtype codecs. Reference values for the block formats come from llama.cpp's own Python package
 * (gguf-py gguf/quants.py, numpy), run once on the same inputs: the byte hashes of its quantizers and the
 * sums and samples of its Q4_K/Q6_K dequantizers are recorded below.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import {
  bf16ToF32,
  dequantize,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  GGML_TYPE,
  ggmlByteSize,
  quantize,
} from "../../src/io/gguf-quant.js";
import { gaussian, rng } from "../../src/model/random.js";

test("f16: every half value survives f16 -> f32 -> f16", () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16ToF32(h);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(f16ToF32(f32ToF16(x))));
    else assert.equal(f32ToF16(x), h, `half 0x${h.toString(16)}`);
  }
});

test("f16: rounding, overflow, subnormals and specials", () => {
  assert.equal(f16ToF32(f32ToF16(1 + 2 ** -11)), 1); // tie -> even (1.0)
  assert.equal(f16ToF32(f32ToF16(1 + 3 * 2 ** -11)), 1 + 2 ** -9); // tie -> even (up)
  assert.equal(f16ToF32(f32ToF16(65504)), 65504);
  assert.equal(f16ToF32(f32ToF16(65520)), Number.POSITIVE_INFINITY); // rounds past the max half
  assert.equal(f16ToF32(f32ToF16(-1e9)), Number.NEGATIVE_INFINITY);
  assert.equal(f16ToF32(f32ToF16(2 ** -24)), 2 ** -24); // smallest subnormal
  assert.equal(f16ToF32(f32ToF16(2 ** -26)), 0); // below half of it
  assert.ok(Object.is(f16ToF32(f32ToF16(-0)), -0));
  assert.ok(Number.isNaN(f16ToF32(f32ToF16(Number.NaN))));
});

test("bf16: round to nearest even, NaN stays NaN", () => {
  assert.equal(bf16ToF32(f32ToBf16(1.5)), 1.5);
  assert.equal(bf16ToF32(f32ToBf16(1 + 2 ** -8)), 1); // tie -> even
  assert.equal(bf16ToF32(f32ToBf16(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(Number.NaN))));
  const g = gaussian(rng(3));
  for (let i = 0; i < 1000; i++) {
    const x = Math.fround(g() * 100);
    assert.ok(Math.abs(bf16ToF32(f32ToBf16(x)) - x) <= Math.abs(x) * 2 ** -8);
  }
});

function fixtureInput(): Float32Array {
  const x = new Float32Array(256);
  for (let i = 0; i < 256; i++) x[i] = Math.sin(i * 0.37) * (1 + (i % 7));
  x[40] = 0;
  x.fill(0, 64, 96); // an all-zero block (scale 0)
  return x;
}

test("quantizers are byte-identical to ggml's reference quantizers (gguf-py)", () => {
  const want: Record<string, string> = {
    Q8_0: "6d124f83bcde49cb292a6fddac273367f1a9cf0d925b6c938f6a0fb4e1947b8d",
    Q4_0: "9571c9fab676edd1ac99a2931cd1c8026cd8a5908629eaf433f8d343ea869582",
    F16: "dc20fa87ec542ec6c84914bfd7384e68bbcabed76856ab27e4307eeeeeea531c",
    BF16: "39b15d4af4a314ee08091bfd0ed41f1065a1506a50d7f9bf167dbfbd8490c7b3",
  };
  const x = fixtureInput();
  for (const [t, h] of Object.entries(want)) {
    const bytes = quantize(GGML_TYPE[t as keyof typeof GGML_TYPE], x);
    assert.equal(createHash("sha256").update(bytes).digest("hex"), h, t);
  }
});

test("Q8_0 and Q4_0 round trips stay within their error bounds", () => {
  const g = gaussian(rng(7));
  const x = new Float32Array(32 * 64).map(() => g() * 2);
  for (const [t, steps] of [
    ["Q8_0", 127],
    ["Q4_0", 8],
  ] as const) {
    const y = dequantize(GGML_TYPE[t], quantize(GGML_TYPE[t], x), x.length);
    for (let b = 0; b < x.length; b += 32) {
      const amax = Math.max(...x.subarray(b, b + 32).map(Math.abs));
      const d = amax / steps;
      // Q8_0: half a step (+ the f16 rounding of the scale); Q4_0: the +8 end is clipped to +7, one step.
      const bound = t === "Q8_0" ? 0.5 * d + 127 * d * 2 ** -11 : d * (1 + 8 * 2 ** -11);
      for (let j = b; j < b + 32; j++) assert.ok(Math.abs(y[j]! - x[j]!) <= bound, `${t} value ${j}`);
    }
  }
});

function kBlocks(bytes: number, blockBytes: number, scales: [number, number][]): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 37 + 11) & 255;
  for (let k = 0; k < bytes / blockBytes; k++) {
    for (const [off, v] of scales) {
      const h = f32ToF16(v);
      b[k * blockBytes + off] = h & 255;
      b[k * blockBytes + off + 1] = h >>> 8;
    }
  }
  return b;
}

test("read-only block types (Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K) dequantize like gguf-py", () => {
  const idx = [0, 1, 37, 100, 255, 256, 300, 511];
  // type, block bytes, f16 scale fields (offset, value), then gguf-py's sum, sum of squares and samples
  const cases: [keyof typeof GGML_TYPE, number, [number, number][], number, number, number[]][] = [
    [
      "Q4_1",
      20,
      [
        [0, 0.1],
        [2, -0.3],
      ],
      230.28125,
      211.28054177761078,
      [
        1.1995849609375, 0.099853515625, 0.899658203125, 1.1995849609375, -0.300048828125, 1.1995849609375,
        1.1995849609375, -0.10009765625,
      ],
    ],
    [
      "Q5_0",
      22,
      [[0, 0.05]],
      -11.197265625,
      109.02674478292465,
      [
        0.44989013671875, -0.0999755859375, -0.7998046875, 0.34991455078125, -0.54986572265625,
        0.44989013671875, 0.14996337890625, -0.199951171875,
      ],
    ],
    [
      "Q5_1",
      24,
      [
        [0, 0.07],
        [2, -0.5],
      ],
      318.6201171875,
      405.4525624513626,
      [
        0.83013916015625, 1.18017578125, -0.219970703125, 0.55010986328125, 0.2000732421875, 0.83013916015625,
        1.11016845703125, -0.0799560546875,
      ],
    ],
    [
      "Q2_K",
      84,
      [
        [80, 0.1],
        [82, 0.02],
      ],
      505.365234375,
      1237.4899145253003,
      [
        3.2991943359375, 0, 0.3998565673828125, 2.419281005859375, 0.5398406982421875, 4.458892822265625,
        1.6595306396484375, 1.8994903564453125,
      ],
    ],
    [
      "Q3_K",
      110,
      [[108, 0.03]],
      23.849029541015625,
      988.9970103045925,
      [
        2.429901123046875, -3.2398681640625, 0.989959716796875, 0, 1.25994873046875, -0.449981689453125,
        -0.809967041015625, 0.17999267578125,
      ],
    ],
    [
      "Q4_K",
      144,
      [
        [0, 0.1],
        [2, 0.05],
      ],
      12516.943359375,
      551323.22059232,
      [
        31.54229736328125, -2.54937744140625, -0.7998046875, 9.4976806640625, 4.84881591796875,
        51.53741455078125, 25.99365234375, 42.3896484375,
      ],
    ],
    [
      "Q5_K",
      176,
      [
        [0, 0.02],
        [2, 0.01],
      ],
      4343.647705078125,
      74899.84161355253,
      [
        16.23346710205078, -0.5101089477539062, 0.64013671875, 4.7010040283203125, 2.1704635620117188,
        7.751655578613281, 18.64398193359375, 5.1811065673828125,
      ],
    ],
    [
      "Q6_K",
      210,
      [[208, 0.01]],
      54.41162109375,
      104632.16296237987,
      [
        -14.313056945800781, 16.963623046875, -2.520538330078125, 25.235389709472656, -0.600128173828125,
        -4.070869445800781, -34.41735076904297, -16.00341796875,
      ],
    ],
  ];
  for (const [name, blockBytes, scales, sum, sumSq, at] of cases) {
    const blocks = 512 / (blockBytes < 30 ? 32 : 256);
    const y = dequantize(GGML_TYPE[name], kBlocks(blocks * blockBytes, blockBytes, scales), 512);
    let s = 0;
    let s2 = 0;
    for (const v of y) {
      s += v;
      s2 += v * v;
    }
    assert.ok(Math.abs(s - sum) <= 1e-9 * sumSq, `${name} sum ${s} vs ${sum}`);
    assert.ok(Math.abs(s2 - sumSq) <= 1e-9 * sumSq, `${name} sum of squares`);
    assert.deepEqual(
      idx.map((i) => y[i]! + 0),
      at,
      name,
    );
  }
});

test("byte sizes and errors for partial blocks", () => {
  assert.equal(ggmlByteSize(GGML_TYPE.Q8_0, 64), 68);
  assert.equal(ggmlByteSize(GGML_TYPE.Q4_0, 40), undefined);
  assert.equal(ggmlByteSize(GGML_TYPE.Q4_K, 512), 288);
  assert.throws(
    () => quantize(GGML_TYPE.Q4_0, new Float32Array(40)),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => quantize(GGML_TYPE.Q6_K, new Float32Array(255)),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => dequantize(GGML_TYPE.Q8_0, new Uint8Array(33), 32),
    (e) => isSteerlabError(e, "bad_tensor"),
  );
});

test("every type encodes: decode(encode(x)) within its precision, zeros exactly", () => {
  // Relative RMS error bounds for values uniform in [-1, 1] with 1% outliers at +3: more bits, less error.
  const bounds: Record<string, number> = {
    Q4_0: 0.12,
    Q4_1: 0.09,
    Q5_0: 0.06,
    Q5_1: 0.045,
    Q8_0: 0.008,
    Q2_K: 0.35,
    Q3_K: 0.2,
    Q4_K: 0.09,
    Q5_K: 0.045,
    Q6_K: 0.025,
  };
  const u = rng(5);
  const n = 256 * 16;
  const x = Float32Array.from({ length: n }, () => 2 * u() - 1 + (u() < 0.01 ? 3 : 0));
  for (const [name, bound] of Object.entries(bounds)) {
    const type = GGML_TYPE[name as keyof typeof GGML_TYPE];
    const y = dequantize(type, quantize(type, x), n);
    let e = 0;
    let s = 0;
    for (let i = 0; i < n; i++) {
      e += (x[i]! - y[i]!) ** 2;
      s += x[i]! ** 2;
    }
    assert.ok(Math.sqrt(e / s) < bound, `${name}: relative rmse ${Math.sqrt(e / s)}`);
    const zeros = dequantize(type, quantize(type, new Float32Array(256)), 256);
    assert.ok(
      zeros.every((v) => v === 0),
      `${name}: zeros decode to ${zeros.find((v) => v !== 0)}`,
    );
  }
});
