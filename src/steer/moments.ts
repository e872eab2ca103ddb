/**
 * Streaming sufficient statistics of contrastive pairs at one layer, so that activation reading can stay
 * bounded in memory: chunks of pairs are added as they come and the rows are dropped.
 *
 *   n                    pairs seen
 *   sumPos, sumNeg [D]   sums of positive and negative members
 *   sumDiff [D]          sum of d_i = pos_i - neg_i
 *   scatterDiff [D, D]   sum of d_i d_i^T (only when second moments are requested: D*D float64)
 *   sumNorm              sum of ||h|| over all members (mean residual norm)
 *
 * PCA of the mean-centred differences needs scatterDiff - n mu mu^T; PCA of midpoint-centred members needs
 * scatterDiff / 2; the mean difference needs only the sums. Moments of disjoint chunks merge by addition.
 */
import { SteerlabError } from "../errors.js";
import { dot, type Rows } from "./linalg.js";
import { pairFlip } from "./pair-flip.js";

export class PairMoments {
  readonly dim: number;
  n = 0;
  readonly sumPos: Float64Array;
  readonly sumNeg: Float64Array;
  readonly sumDiff: Float64Array;
  readonly scatterDiff: Float64Array | null;
  sumNorm = 0;
  /** With a flip seed: sum of s_i d_i, s_i = pairFlip(seed, i) over the global pair index (repe-pca shufflePairs). */
  readonly flipSeed: number | null;
  readonly sumFlippedDiff: Float64Array | null;

  constructor(dim: number, opts: { secondMoments?: boolean; flipSeed?: number } = {}) {
    this.dim = dim;
    this.flipSeed = opts.flipSeed ?? null;
    this.sumFlippedDiff = opts.flipSeed !== undefined ? new Float64Array(dim) : null;
    this.sumPos = new Float64Array(dim);
    this.sumNeg = new Float64Array(dim);
    this.sumDiff = new Float64Array(dim);
    this.scatterDiff = opts.secondMoments === false ? null : new Float64Array(dim * dim);
  }

  /** Add a chunk of pairs: positive [n, D] and negative [n, D], row i of each forming pair i. */
  add(positive: Rows, negative: Rows): this {
    const D = this.dim;
    if (positive.dim !== D || negative.dim !== D || positive.n !== negative.n) {
      throw new SteerlabError("bad_input", "moment chunk has the wrong shape", {
        expected: `two [n, ${D}] blocks with the same n`,
        got: `[${positive.n}, ${positive.dim}] and [${negative.n}, ${negative.dim}]`,
      });
    }
    const d = new Float64Array(D);
    for (let i = 0; i < positive.n; i++) {
      const o = i * D;
      const flip = this.flipSeed !== null ? pairFlip(this.flipSeed, this.n) : 1;
      for (let j = 0; j < D; j++) {
        const p = positive.data[o + j]!;
        const q = negative.data[o + j]!;
        if (!Number.isFinite(p) || !Number.isFinite(q)) {
          throw new SteerlabError("bad_input", "activations contain NaN or Inf", { got: `pair row ${i}` });
        }
        this.sumPos[j]! += p;
        this.sumNeg[j]! += q;
        d[j] = p - q;
        this.sumDiff[j]! += p - q;
        if (this.sumFlippedDiff) this.sumFlippedDiff[j]! += flip * (p - q);
      }
      this.sumNorm +=
        Math.sqrt(dot(positive.data, positive.data, o, o, D)) +
        Math.sqrt(dot(negative.data, negative.data, o, o, D));
      const s = this.scatterDiff;
      if (s) {
        for (let a = 0; a < D; a++) {
          const da = d[a]!;
          if (da === 0) continue;
          const row = a * D;
          for (let b = a; b < D; b++) s[row + b]! += da * d[b]!;
        }
      }
      this.n++;
    }
    return this;
  }

  /** Add another accumulator's statistics (disjoint data; not with a flip seed, whose signs follow the pair index). */
  merge(o: PairMoments): this {
    if (o.dim !== this.dim) throw new SteerlabError("bad_input", "merging moments of different dimension");
    if (this.flipSeed !== null || o.flipSeed !== null) {
      throw new SteerlabError("unsupported", "moments with a flip seed cannot be merged", {
        hint: "stream all pairs through one accumulator",
      });
    }
    this.n += o.n;
    this.sumNorm += o.sumNorm;
    for (let j = 0; j < this.dim; j++) {
      this.sumPos[j]! += o.sumPos[j]!;
      this.sumNeg[j]! += o.sumNeg[j]!;
      this.sumDiff[j]! += o.sumDiff[j]!;
    }
    if (this.scatterDiff && o.scatterDiff)
      for (let k = 0; k < this.scatterDiff.length; k++) this.scatterDiff[k]! += o.scatterDiff[k]!;
    else if (this.scatterDiff) throw new SteerlabError("bad_input", "merging moments without second moments");
    return this;
  }

  /** The full symmetric scatter of the differences [D, D] (only the upper triangle is accumulated). */
  scatter(): Float64Array {
    const s = this.scatterDiff;
    if (!s) {
      throw new SteerlabError("unsupported", "this method needs second moments", {
        hint: "accumulate with { secondMoments: true }",
      });
    }
    const D = this.dim;
    const full = new Float64Array(s);
    for (let a = 0; a < D; a++) for (let b = 0; b < a; b++) full[a * D + b] = full[b * D + a]!;
    return full;
  }

  meanFlippedDiff(): Float64Array {
    if (!this.sumFlippedDiff)
      throw new SteerlabError("bad_input", "moments were accumulated without a flip seed");
    return this.sumFlippedDiff.map((x) => x / Math.max(1, this.n));
  }

  meanDiff(): Float64Array {
    const m = new Float64Array(this.dim);
    for (let j = 0; j < this.dim; j++) m[j] = this.sumDiff[j]! / Math.max(1, this.n);
    return m;
  }
}
