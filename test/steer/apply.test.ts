import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import type { HookBinding, HookContext } from "../../src/model/engine.js";
import { gaussian, rng } from "../../src/model/random.js";
import { type PositionSpec, parsePositions, positionSelector, steeringHooks } from "../../src/steer/apply.js";
import { makeVector } from "../../src/steer/vector.js";

const D = 4;

function ctx(layer: number, hidden: number[][][], positions: number[][]): HookContext {
  const batch = hidden.length;
  const seq = hidden[0]!.length;
  return {
    point: { layer, site: "resid_post" },
    hidden: Float32Array.from(hidden.flat(2)),
    batch,
    seq,
    dim: D,
    positions: Int32Array.from(positions.flat()),
  };
}

function randomHidden(batch: number, seq: number, seed: number): number[][][] {
  const g = gaussian(rng(seed));
  return Array.from({ length: batch }, () =>
    Array.from({ length: seq }, () => Array.from({ length: D }, () => 3 * g())),
  );
}

const v = Float32Array.from([1, 2, 0, -2]); // norm 3
const u = Float32Array.from(v, (x) => x / 3);
const vec = makeVector(
  new Map([
    [1, v],
    [2, Float32Array.from([0, 0, 1, 0])],
  ]),
  { model: { arch: "llama", hiddenSize: D, nLayers: 4, fingerprint: null } },
);

function run(bindings: HookBinding[], c: HookContext): Float32Array {
  for (const b of bindings) if (b.point.layer === c.point.layer && b.point.site === c.point.site) b.fn(c);
  return c.hidden;
}

const dotAt = (h: Float32Array, o: number, w: Float32Array) => w.reduce((s, x, j) => s + x * h[o + j]!, 0);

describe("operators", () => {
  const hidden = randomHidden(2, 3, 1);
  const positions = [
    [-1, 0, 1],
    [0, 1, 2],
  ];

  it("add: h + c v at real tokens, padding untouched", () => {
    const h0 = ctx(1, hidden, positions).hidden;
    const h = run(steeringHooks(vec, { coeff: 2.5, layers: [1] }), ctx(1, hidden, positions));
    for (let k = 0; k < 6; k++) {
      for (let j = 0; j < D; j++) {
        const want = k === 0 ? h0[j]! : h0[k * D + j]! + 2.5 * v[j]!;
        assert.ok(Math.abs(h[k * D + j]! - want) < 1e-5, `token ${k} dim ${j}`);
      }
    }
  });

  it("coefficient 0 leaves every bit unchanged", () => {
    const h0 = ctx(1, hidden, positions).hidden;
    assert.deepEqual(run(steeringHooks(vec, { coeff: 0 }), ctx(1, hidden, positions)), h0);
  });

  it("ablate removes the component along v and nothing else; clamp sets it", () => {
    const h0 = ctx(1, hidden, positions).hidden;
    const ab = run(steeringHooks(vec, { op: "ablate", layers: [1] }), ctx(1, hidden, positions));
    const cl = run(steeringHooks(vec, { op: "clamp", coeff: -4, layers: [1] }), ctx(1, hidden, positions));
    for (let k = 1; k < 6; k++) {
      const o = k * D;
      assert.ok(Math.abs(dotAt(ab, o, u)) < 1e-5, "ablated component is 0");
      assert.ok(Math.abs(dotAt(cl, o, u) + 4) < 1e-5, "clamped component is -4");
      const p = dotAt(h0, o, u);
      for (let j = 0; j < D; j++) {
        assert.ok(Math.abs(ab[o + j]! - (h0[o + j]! - p * u[j]!)) < 1e-5, "orthogonal part kept");
        assert.ok(Math.abs(cl[o + j]! - (h0[o + j]! + (-4 - p) * u[j]!)) < 1e-5, "clamp formula");
      }
    }
  });

  it("several vectors at one point apply in order, in one binding per point", () => {
    const w = makeVector(new Map([[1, Float32Array.from([0, 0, 0, 1])]]));
    const b = steeringHooks(
      [
        { vector: vec, coeff: 1 },
        { vector: w, op: "ablate" },
      ],
      { layers: [1] },
    );
    assert.equal(b.length, 1);
    const h = run(b, ctx(1, hidden, positions));
    const h0 = ctx(1, hidden, positions).hidden;
    for (let k = 1; k < 6; k++) {
      assert.ok(Math.abs(h[k * D + 3]!) < 1e-6, "last coordinate ablated after the add");
      assert.ok(Math.abs(h[k * D + 1]! - (h0[k * D + 1]! + 2)) < 1e-5, "add applied");
    }
    assert.equal(steeringHooks([vec, w]).length, 2, "layers 1 and 2");
  });

  it("norm guard keeps each steered position's norm", () => {
    const h0 = ctx(1, hidden, positions).hidden;
    const h = run(steeringHooks(vec, { coeff: 10, layers: [1], normGuard: true }), ctx(1, hidden, positions));
    for (let k = 1; k < 6; k++) {
      const n0 = Math.hypot(...h0.subarray(k * D, (k + 1) * D));
      const n1 = Math.hypot(...h.subarray(k * D, (k + 1) * D));
      assert.ok(Math.abs(n0 - n1) < 1e-4 * n0, `norm ${n0} vs ${n1}`);
    }
  });

  it("layers: lists, negative indices, specs; missing layers are errors", () => {
    assert.deepEqual(
      steeringHooks(vec, { layers: [-3] }).map((b) => b.point.layer),
      [1],
    );
    assert.deepEqual(
      steeringHooks(vec, { layers: "-3..-2" }).map((b) => b.point.layer),
      [1, 2],
    );
    assert.throws(
      () => steeringHooks(vec, { layers: [0] }),
      (e) => isSteerlabError(e, "bad_input") && /layer 0/.test(e.message),
    );
    const bare = makeVector(new Map([[1, v]]));
    assert.throws(() => steeringHooks(bare, { layers: [-1] }), /nLayers/);
    assert.deepEqual(
      steeringHooks(bare, { layers: [-3], nLayers: 4 }).map((b) => b.point.layer),
      [1],
    );
  });

  it("a vector of the wrong width is a mismatch at call time", () => {
    const wide = makeVector(new Map([[1, new Float32Array(D + 1)]]));
    const [b] = steeringHooks(wide);
    assert.throws(
      () => b!.fn(ctx(1, hidden, positions)),
      (e) => isSteerlabError(e, "mismatch"),
    );
  });
});

describe("positions", () => {
  // row 0 has 2 padding tokens; a 3-token prompt in row 0 and a 4-token prompt in row 1
  const full = [
    [-1, -1, 0, 1, 2, 3, 4],
    [0, 1, 2, 3, 4, 5, 6],
  ];
  const modes: [string, PositionSpec, number[][]][] = [
    [
      "all",
      "all",
      [
        [0, 1, 2, 3, 4],
        [0, 1, 2, 3, 4, 5, 6],
      ],
    ],
    [
      "prompt",
      { mode: "prompt", promptLength: [3, 4] },
      [
        [0, 1, 2],
        [0, 1, 2, 3],
      ],
    ],
    [
      "generated",
      { mode: "generated", promptLength: [3, 4] },
      [
        [3, 4],
        [4, 5, 6],
      ],
    ],
    [
      "after marker",
      { mode: "after", index: [1, 2] },
      [
        [2, 3, 4],
        [3, 4, 5, 6],
      ],
    ],
    [
      "first 2",
      { mode: "first", k: 2 },
      [
        [0, 1],
        [0, 1],
      ],
    ],
    [
      "last 2 of the prompt",
      { mode: "last", k: 2, promptLength: [3, 4] },
      [
        [1, 2],
        [2, 3],
      ],
    ],
    [
      "window 1..4",
      { mode: "window", start: 1, end: 4 },
      [
        [1, 2, 3],
        [1, 2, 3],
      ],
    ],
  ];

  for (const [name, spec, want] of modes) {
    it(`${name}: steers the right tokens, and prefill + cached decode equals one full call`, () => {
      const hidden = randomHidden(2, 7, 5);
      const hooks = steeringHooks(vec, { coeff: 1.5, layers: [1], positions: spec });
      const h0 = ctx(1, hidden, full).hidden;
      const one = run(hooks, ctx(1, hidden, full));
      // which absolute positions changed, per row
      const changed = full.map((row, b) =>
        row.filter(
          (p, t) =>
            p >= 0 &&
            h0.subarray((b * 7 + t) * D, (b * 7 + t + 1) * D).some((x, j) => x !== one[(b * 7 + t) * D + j]),
        ),
      );
      assert.deepEqual(changed, want);
      // prefill (first 4 columns), then three one-token decode calls with their absolute positions
      const parts: Float32Array[] = [];
      const slice = (a: number, b: number) =>
        ctx(
          1,
          hidden.map((r) => r.slice(a, b)),
          full.map((r) => r.slice(a, b)),
        );
      for (const [a, b] of [
        [0, 4],
        [4, 5],
        [5, 6],
        [6, 7],
      ] as const)
        parts.push(run(hooks, slice(a, b)));
      for (let b = 0; b < 2; b++) {
        let t = 0;
        for (const [k, [a, e]] of (
          [
            [0, 4],
            [4, 5],
            [5, 6],
            [6, 7],
          ] as const
        ).entries()) {
          for (let s = 0; s < e - a; s++, t++) {
            const got = parts[k]!.subarray((b * (e - a) + s) * D, (b * (e - a) + s + 1) * D);
            assert.deepEqual(got, one.subarray((b * 7 + t) * D, (b * 7 + t + 1) * D), `row ${b} column ${t}`);
          }
        }
      }
    });
  }

  it("parses CLI specs", () => {
    assert.equal(parsePositions("all"), "all");
    assert.deepEqual(parsePositions("last:3", { promptLength: 7 }), { mode: "last", k: 3, promptLength: 7 });
    assert.deepEqual(parsePositions("window:2..9"), { mode: "window", start: 2, end: 9 });
    assert.throws(() => parsePositions("window:9..2"), /A must be below B/);
    assert.throws(() => parsePositions("window:3..3"), /A must be below B/);
    assert.deepEqual(parsePositions("after", { markerIndex: [4, 5] }), { mode: "after", index: [4, 5] });
    assert.throws(() => parsePositions("generated"), /prompt length/);
    assert.throws(
      () => parsePositions("middle"),
      (e) => isSteerlabError(e, "bad_input"),
    );
    assert.throws(
      () => positionSelector({ mode: "prompt", promptLength: [3] })(1, 0),
      /no value for batch row 1/,
    );
  });
});
