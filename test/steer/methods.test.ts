import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { gaussian, rng } from "../../src/model/random.js";
import { extract, MomentExtractor } from "../../src/steer/extract.js";
import { dot, type Rows, unit } from "../../src/steer/linalg.js";
import { asLabelled } from "../../src/steer/methods/logistic.js";
import type { ExtractionMethod, LayerData } from "../../src/steer/methods/method.js";
import { voteSign } from "../../src/steer/methods/pca-common.js";
import { getMethod, methodNames, registerMethod } from "../../src/steer/methods/registry.js";

const D = 48;

/** Pairs with a planted unit direction u: pos = base + (a/2) u + e, neg = base - (a/2) u + e'. */
function planted(n: number, seed: number, opts: { flipFraction?: number } = {}) {
  const g = gaussian(rng(seed));
  const u = unit(Float64Array.from({ length: D }, () => g()));
  const offset = Float64Array.from({ length: D }, () => 20 * g()); // a large shared residual mean
  const pos = new Float32Array(n * D);
  const neg = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    // content varies a lot, but orthogonally to u (so a probe on single rows can find u too)
    const base = Float64Array.from({ length: D }, () => 3 * g());
    const bu = dot(base, u);
    const a = (1 + (2 * ((i * 7919) % 97)) / 97) * (i < (opts.flipFraction ?? 0) * n ? -1 : 1);
    for (let j = 0; j < D; j++) {
      const c = offset[j]! + base[j]! - bu * u[j]!;
      pos[i * D + j] = c + (a / 2) * u[j]! + 0.02 * g();
      neg[i * D + j] = c - (a / 2) * u[j]! + 0.02 * g();
    }
  }
  const data: LayerData = {
    kind: "pairs",
    positive: { data: pos, n, dim: D },
    negative: { data: neg, n, dim: D },
  };
  return { u, data };
}

describe("extraction methods recover a planted direction", () => {
  for (const name of ["repe-pca", "pca-center", "mean-diff", "logistic"]) {
    it(`${name}: cosine >= 0.99 and the right sign, per layer`, () => {
      const a = planted(80, 1);
      const b = planted(80, 2);
      const res = extract(
        name,
        new Map([
          [3, a.data],
          [4, b.data],
        ]),
        { folds: 4 },
      );
      for (const [layer, p] of [
        [3, a],
        [4, b],
      ] as const) {
        const v = res.directions.get(layer)!;
        assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5, "unit norm");
        const cos = dot(v, p.u);
        assert.ok(cos >= 0.99, `${name} layer ${layer}: cosine ${cos}`);
        const d = res.diagnostics.get(layer)!;
        assert.equal(d.trainAccuracy, 1);
        assert.equal(d.heldOutAccuracy, 1);
        assert.equal(d.folds, 4);
        assert.ok(d.projectionGap > 0, `gap ${d.projectionGap}`);
      }
    });
  }

  it("logistic and mean-diff also fit labelled rows", () => {
    // independent rows: x = offset + content (orthogonal to u, std 0.2) +- (a/2) u
    const g = gaussian(rng(3));
    const u = unit(Float64Array.from({ length: D }, () => g()));
    const n = 600;
    const x = new Float32Array(n * D);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 3 === 0 ? 1 : 0; // unbalanced on purpose
      const c = Float64Array.from({ length: D }, () => 0.2 * g());
      const cu = dot(c, u);
      const a = (labels[i] ? 1 : -1) * (0.5 + Math.abs(g()) * 0.5);
      for (let j = 0; j < D; j++) x[i * D + j] = 5 + c[j]! - cu * u[j]! + a * u[j]!;
    }
    const lab: LayerData = { kind: "labelled", x: { data: x, n, dim: D }, labels };
    for (const name of ["mean-diff", "logistic"]) {
      const res = extract(name, new Map([[0, lab]]), { folds: 3 });
      const v = res.directions.get(0)!;
      assert.ok(dot(v, u) >= 0.99, `${name}: ${dot(v, u)}`);
      const d = res.diagnostics.get(0)!;
      assert.equal(d.heldOutKind, "threshold");
      assert.equal(d.n, n);
      assert.ok(d.heldOutAccuracy! > 0.95, `${name}: held-out ${d.heldOutAccuracy}`);
    }
  });

  it("PCA methods refuse labelled data; unknown methods are named", () => {
    const lab = asLabelled(planted(10, 4).data as LayerData & { kind: "pairs" });
    assert.throws(
      () => extract("repe-pca", new Map([[0, lab]])),
      (e) => isSteerlabError(e, "bad_input"),
    );
    assert.throws(
      () => getMethod("nope"),
      (e) => isSteerlabError(e, "not_found") && /repe-pca/.test(e.message),
    );
  });

  it("uses the N x N Gram when N <= D and the D x D covariance otherwise, same answer", () => {
    const small = planted(20, 5); // 20 < 48
    const big = planted(200, 5); // 200 > 48
    const r1 = extract("repe-pca", new Map([[0, small.data]]), { folds: 0 });
    const r2 = extract("repe-pca", new Map([[0, big.data]]), { folds: 0 });
    assert.equal(r1.info.get(0)!.via, "gram");
    assert.equal(r2.info.get(0)!.via, "covariance");
    assert.equal(r1.info.get(0)!.converged, true);
    assert.equal(r2.info.get(0)!.converged, true);
    assert.ok(dot(r1.directions.get(0)!, small.u) > 0.99, "gram path");
    assert.ok(dot(r2.directions.get(0)!, big.u) > 0.99, "covariance path");
  });
});

describe("repe-pca sign rule", () => {
  // 2-D differences along e1: three pairs +, one pair strongly -; the mean difference points to -e1
  const diffs = [3, 2, 1, -10];
  const pos = new Float32Array(diffs.flatMap((a, i) => [a, i % 2 ? 0.1 : -0.1]));
  const neg = new Float32Array(8);
  const data: LayerData = {
    kind: "pairs",
    positive: { data: pos, n: 4, dim: 2 },
    negative: { data: neg, n: 4, dim: 2 },
  };

  it("follows the majority of pairs, not the mean", () => {
    const v = getMethod("repe-pca").fitLayer(data).direction;
    assert.ok(v[0]! > 0.99, `repe-pca: ${v}`);
    const m = getMethod("mean-diff").fitLayer(data).direction;
    assert.ok(m[0]! < -0.99, `mean-diff: ${m}`);
  });

  it("flips a PC that points the wrong way, keeps a right one, breaks ties by the summed projection", () => {
    const d: Rows = { data: Float64Array.from([3, 0, 2, 0, -10, 0]), n: 3, dim: 2 };
    const flipped = voteSign(d, Float64Array.from([-1, 0]));
    assert.equal(flipped.flipped, true);
    assert.deepEqual([...flipped.direction], [1, -0]);
    assert.equal(flipped.votesFor, 2);
    assert.equal(flipped.votesAgainst, 1);
    assert.equal(voteSign(d, Float64Array.from([1, 0])).flipped, false);
    const tie: Rows = { data: Float64Array.from([1, 0, -3, 0]), n: 2, dim: 2 };
    assert.equal(voteSign(tie, Float64Array.from([1, 0])).flipped, true); // sum -2 < 0
  });

  it("needs variation across pairs", () => {
    const same: LayerData = {
      kind: "pairs",
      positive: { data: Float32Array.from([1, 0, 1, 0]), n: 2, dim: 2 },
      negative: { data: Float32Array.from([0, 0, 0, 0]), n: 2, dim: 2 },
    };
    assert.throws(() => getMethod("repe-pca").fitLayer(same, { shufflePairs: false }), /mean-diff/);
    // shuffled, the same two differences become +-(1, 0) and the direction is e1 again
    assert.ok(getMethod("repe-pca").fitLayer(same).direction[0]! > 0.999, "shuffled identical differences");
    assert.throws(
      () =>
        getMethod("repe-pca").fitLayer({ ...same, negative: { data: new Float32Array(2), n: 1, dim: 2 } }),
      /unpaired/,
    );
  });
});

describe("diagnostics on hand-made data", () => {
  // differences (3,0) (-1,0) (1,1) (1,-1); mean (1,0); centred (2,0) (-2,0) (0,1) (0,-1): PC1 = e1, EV 8/10
  const d = [3, 0, -1, 0, 1, 1, 1, -1];
  const neg = Float32Array.from([0, 5, 0, 5, 0, 5, 0, 5]);
  const pos = Float32Array.from(d.map((x, i) => x + neg[i]!));
  const data: LayerData = {
    kind: "pairs",
    positive: { data: pos, n: 4, dim: 2 },
    negative: { data: neg, n: 4, dim: 2 },
  };

  it("gives the exact values", () => {
    const r = extract("repe-pca", new Map([[7, data]]), { folds: 0, shufflePairs: false });
    const v = r.directions.get(7)!;
    assert.ok(v[0]! > 0.999999, `direction ${v}`);
    const g = r.diagnostics.get(7)!;
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) < 1e-6, `${what}: ${a} vs ${b}`);
    close(g.explainedVariance, 0.8, "explained variance");
    close(g.directionVariance, 0.8, "direction variance");
    close(g.projectionGap, 1, "gap");
    close(g.meanDiffNorm, 1, "mean diff norm");
    close(g.cosMeanDiff, 1, "cos");
    close(g.trainAccuracy, 0.75, "train accuracy");
    close(
      g.residNorm,
      (20 + Math.sqrt(34) + Math.sqrt(26) + Math.sqrt(37) + Math.sqrt(17)) / 8,
      "resid norm",
    );
    assert.equal(g.heldOutAccuracy, null);
    assert.deepEqual(r.suggestedLayers, [7]);
  });

  it("suggests a contiguous block around the best layer", () => {
    const layers = new Map<number, LayerData>();
    const noisy = (seed: number): LayerData => {
      const g = gaussian(rng(seed));
      const mk = () => Float32Array.from({ length: 40 * D }, () => g());
      return {
        kind: "pairs",
        positive: { data: mk(), n: 40, dim: D },
        negative: { data: mk(), n: 40, dim: D },
      };
    };
    for (let l = 0; l < 10; l++) layers.set(l, l >= 4 && l <= 6 ? planted(40, 10 + l).data : noisy(l));
    const r = extract("mean-diff", layers, { folds: 4, suggest: { maxLayers: 3 } });
    assert.deepEqual(r.suggestedLayers, [4, 5, 6]);
    assert.ok(r.diagnostics.get(0)!.heldOutAccuracy! < 0.8, "noise layer");
  });
});

describe("streaming from moments", () => {
  for (const name of ["repe-pca", "pca-center", "mean-diff"]) {
    it(`${name}: two passes over chunks give the in-memory direction and diagnostics`, () => {
      const p = planted(90, 21, { flipFraction: 0.2 });
      const mem = extract(name, new Map([[2, p.data]]), { folds: 0 });
      const ex = new MomentExtractor(name);
      const { positive, negative } = p.data as LayerData & { kind: "pairs" };
      const chunk = (m: Rows, a: number, b: number): Rows => ({
        data: m.data.subarray(a * D, b * D),
        n: b - a,
        dim: D,
      });
      for (const [a, b] of [
        [0, 40],
        [40, 90],
      ])
        ex.add(2, chunk(positive, a, b), chunk(negative, a, b));
      ex.fit();
      for (const [a, b] of [
        [0, 10],
        [10, 90],
      ])
        ex.vote(2, chunk(positive, a, b), chunk(negative, a, b));
      const st = ex.finish();
      const cos = dot(st.directions.get(2)!, mem.directions.get(2)!);
      assert.ok(cos > 0.99999, `${name}: ${cos}`);
      const x = st.diagnostics.get(2)!;
      const y = mem.diagnostics.get(2)!;
      for (const k of [
        "trainAccuracy",
        "projectionGap",
        "meanDiffNorm",
        "residNorm",
        "cosMeanDiff",
      ] as const) {
        assert.ok(Math.abs(x[k] - y[k]) < 1e-4 * Math.max(1, Math.abs(y[k])), `${k}: ${x[k]} vs ${y[k]}`);
      }
      if (name !== "mean-diff") {
        assert.ok(
          Math.abs(x.explainedVariance - y.explainedVariance) < 1e-6,
          `EV ${x.explainedVariance} vs ${y.explainedVariance}`,
        );
      }
    });
  }

  it("refuses methods that need rows", () => {
    assert.throws(
      () => new MomentExtractor("logistic"),
      (e) => isSteerlabError(e, "unsupported"),
    );
  });
});

describe("registry", () => {
  it("plugs in a user method and refuses silent replacement", () => {
    const firstAxis: ExtractionMethod = {
      name: "first-axis",
      description: "test: always e1",
      accepts: ["pairs"],
      fitLayer: (d) => {
        const dim = d.kind === "pairs" ? d.positive.dim : d.x.dim;
        const v = new Float32Array(dim);
        v[0] = 1;
        return { direction: v, info: {} };
      },
    };
    registerMethod(firstAxis);
    assert.ok(methodNames().includes("first-axis"));
    const r = extract("first-axis", new Map([[0, planted(10, 9).data]]), { folds: 0 });
    assert.equal(r.directions.get(0)![0], 1);
    assert.throws(() => registerMethod(firstAxis), /already registered/);
    registerMethod(firstAxis, { replace: true });
  });
});

describe("repe-pca pair shuffling", () => {
  // every pair differs by the same 2 u plus small noise: centring leaves only the noise
  const g = gaussian(rng(31));
  const u = unit(Float64Array.from({ length: D }, () => g()));
  const n = 60;
  const pos = new Float32Array(n * D);
  const neg = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < D; j++) {
      const c = 3 * g();
      pos[i * D + j] = c + u[j]! + 0.05 * g();
      neg[i * D + j] = c - u[j]! + 0.05 * g();
    }
  }
  const data: LayerData = {
    kind: "pairs",
    positive: { data: pos, n, dim: D },
    negative: { data: neg, n, dim: D },
  };

  it("recovers a contrast shared by all pairs only with shuffled pair order, right sign either way", () => {
    const plain = getMethod("repe-pca").fitLayer(data, { shufflePairs: false }).direction;
    assert.ok(Math.abs(dot(plain, u)) < 0.9, `as given: ${dot(plain, u)}`);
    const shuffled = getMethod("repe-pca").fitLayer(data, { shufflePairs: 3 }).direction;
    assert.ok(dot(shuffled, u) > 0.99, `shuffled: ${dot(shuffled, u)}`);
    const byDefault = getMethod("repe-pca").fitLayer(data).direction;
    assert.ok(dot(byDefault, u) > 0.99, `default (shuffled, seed 1): ${dot(byDefault, u)}`);
  });

  it("streams to the same direction", () => {
    const ex = new MomentExtractor("repe-pca", { shufflePairs: 3 });
    const { positive, negative } = data as LayerData & { kind: "pairs" };
    ex.add(0, positive, negative);
    ex.fit();
    ex.vote(0, positive, negative);
    const st = ex.finish().directions.get(0)!;
    const mem = getMethod("repe-pca").fitLayer(data, { shufflePairs: 3 }).direction;
    assert.ok(dot(st, mem) > 0.99999, `stream vs memory: ${dot(st, mem)}`);
  });
});

describe("k-fold subsets", () => {
  for (const name of ["repe-pca", "pca-center"]) {
    it(`${name}: fitSubset through the cached Gram equals fitLayer on a copy of the subset`, () => {
      const p = planted(30, 41, { flipFraction: 0.3 });
      const { positive, negative } = p.data as LayerData & { kind: "pairs" };
      const idx = [0, 2, 3, 5, 8, 13, 21, 22, 25, 29];
      const pick = (m: Rows): Rows => ({
        data: Float32Array.from(idx.flatMap((i) => [...m.data.subarray(i * D, (i + 1) * D)])),
        n: idx.length,
        dim: D,
      });
      const copy: LayerData = { kind: "pairs", positive: pick(positive), negative: pick(negative) };
      const m = getMethod(name);
      const a = m.fitSubset!(p.data, idx, { shufflePairs: false }).direction;
      const b = m.fitLayer(copy, { shufflePairs: false }).direction;
      assert.ok(dot(a, b) > 1 - 1e-7, `${name}: ${dot(a, b)}`);
    });
  }
});
