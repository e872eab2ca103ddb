/**
 * Least squares with uncertainty: a Levenberg-Marquardt solver for small nonlinear models and an exact linear
 * solver, both returning R^2, standard errors from the Jacobian at the optimum and t-based confidence intervals.
 * Curves here have tens of points and 2-3 parameters, so everything is dense and exact.
 */
import { SteerlabError } from "../errors.js";
import { invert, rSquared, solve, tQuantile } from "./stats.js";

/** A fitted model: parameter values by name with their uncertainty and goodness of fit. */
export interface FitResult {
  /** Which law was fitted, e.g. "tanh", "corollary-full", "poly2". */
  readonly kind: string;
  readonly names: readonly string[];
  readonly values: readonly number[];
  /** Standard error of each parameter (sqrt of the covariance diagonal). */
  readonly se: readonly number[];
  /** Confidence interval of each parameter at `confidence`: value -+ t_{dof} * se. */
  readonly ci: readonly (readonly [number, number])[];
  readonly confidence: number;
  /** Parameter covariance [p][p]. */
  readonly cov: readonly (readonly number[])[];
  readonly r2: number;
  /** Residual sum of squares (weighted when sigma was given). */
  readonly rss: number;
  readonly n: number;
  readonly dof: number;
  readonly iterations: number;
  readonly converged: boolean;
  readonly weighted: boolean;
  /** The x range the fit used. */
  readonly range: readonly [number, number];
}

export interface LsqOptions {
  /** Per-point standard errors; points are weighted by 1/sigma^2 (sigma floored at `sigmaFloor`). */
  sigma?: readonly number[];
  /**
   * Smallest sigma used, so a point with zero spread (a saturated mean) does not get infinite weight.
   * Default: the smallest positive sigma of the data (such a point weighs as much as the best-measured one);
   * all sigmas zero: every point weighs the same.
   */
  sigmaFloor?: number;
  /** Bounds on the parameters of a nonlinear fit (projected Levenberg-Marquardt), e.g. [0, 0] for a, b >= 0. */
  lower?: readonly number[];
  upper?: readonly number[];
  /** If true, sigma is absolute (covariance not rescaled by the reduced chi^2), as scipy's absolute_sigma. */
  absoluteSigma?: boolean;
  /** Confidence level of the intervals. Default 0.95. */
  confidence?: number;
  maxIterations?: number;
}

export interface NonlinearModel {
  readonly kind: string;
  readonly names: readonly string[];
  f(x: number, p: readonly number[]): number;
  /** df/dp at x; central differences are used when absent. */
  grad?(x: number, p: readonly number[]): number[];
}

function checkData(
  x: readonly number[],
  y: readonly number[],
  nParams: number,
  sigma?: readonly number[],
): void {
  const problems: string[] = [];
  if (x.length !== y.length) problems.push(`x has ${x.length} points, y has ${y.length}`);
  if (sigma && sigma.length !== y.length)
    problems.push(`sigma has ${sigma.length} points, y has ${y.length}`);
  if (x.length <= nParams) problems.push(`need more than ${nParams} points, got ${x.length}`);
  x.forEach((v, i) => {
    if (!Number.isFinite(v) || !Number.isFinite(y[i]!))
      problems.push(`point ${i} is not finite (${v}, ${y[i]})`);
  });
  if (problems.length) {
    throw new SteerlabError("bad_input", "cannot fit this curve", {
      problems,
      hint: "pass finite points, more than the parameters",
    });
  }
}

function weightsOf(n: number, o: LsqOptions): number[] {
  if (!o.sigma) return new Array<number>(n).fill(1);
  const positive = o.sigma.map(Math.abs).filter((s) => s > 0 && Number.isFinite(s));
  const floor = o.sigmaFloor ?? (positive.length ? Math.min(...positive) : 1);
  return o.sigma.map((s) => 1 / Math.max(Math.abs(s), floor) ** 2);
}

/** p clamped into [lower, upper] (either may be absent). */
function clampTo(p: readonly number[], o: LsqOptions): number[] {
  return p.map((v, i) => Math.min(Math.max(v, o.lower?.[i] ?? -Infinity), o.upper?.[i] ?? Infinity));
}

function finish(
  kind: string,
  names: readonly string[],
  values: number[],
  JtWJ: number[][],
  x: readonly number[],
  y: readonly number[],
  yhat: number[],
  w: number[],
  o: LsqOptions,
  iterations: number,
  converged: boolean,
): FitResult {
  const n = x.length;
  const p = values.length;
  const dof = n - p;
  let rss = 0;
  for (let i = 0; i < n; i++) rss += w[i]! * (y[i]! - yhat[i]!) ** 2;
  const scale = o.sigma && o.absoluteSigma ? 1 : rss / dof;
  const inv = invert(JtWJ);
  const cov = inv
    ? inv.map((row) => row.map((v) => v * scale))
    : names.map(() => names.map(() => Number.NaN));
  const se = cov.map((row, i) => Math.sqrt(Math.max(row[i]!, 0)));
  const confidence = o.confidence ?? 0.95;
  const t = tQuantile(1 - (1 - confidence) / 2, dof);
  const ci = values.map((v, i) => [v - t * se[i]!, v + t * se[i]!] as const);
  return {
    kind,
    names,
    values,
    se,
    ci,
    confidence,
    cov,
    r2: rSquared(y, yhat, o.sigma ? w : undefined),
    rss,
    n,
    dof,
    iterations,
    converged,
    weighted: !!o.sigma,
    range: [Math.min(...x), Math.max(...x)],
  };
}

function jacobianRow(model: NonlinearModel, x: number, p: readonly number[]): number[] {
  if (model.grad) return model.grad(x, p);
  return p.map((pj, j) => {
    const h = 1e-6 * Math.max(1, Math.abs(pj));
    const up = [...p];
    const dn = [...p];
    up[j] = pj + h;
    dn[j] = pj - h;
    return (model.f(x, up) - model.f(x, dn)) / (2 * h);
  });
}

/** J^T W J [p][p] and J^T W r [p] at parameters p. */
function normalEquations(
  model: NonlinearModel,
  x: readonly number[],
  y: readonly number[],
  w: number[],
  p: readonly number[],
) {
  const np = p.length;
  const A = Array.from({ length: np }, () => new Array<number>(np).fill(0));
  const g = new Array<number>(np).fill(0);
  let rss = 0;
  for (let i = 0; i < x.length; i++) {
    const r = y[i]! - model.f(x[i]!, p);
    rss += w[i]! * r * r;
    const J = jacobianRow(model, x[i]!, p);
    for (let a = 0; a < np; a++) {
      g[a]! += w[i]! * J[a]! * r;
      for (let b = 0; b < np; b++) A[a]![b]! += w[i]! * J[a]! * J[b]!;
    }
  }
  return { A, g, rss };
}

/** Levenberg-Marquardt from `p0`; Marquardt's diagonal scaling; stops on a relative RSS change < 1e-14. */
export function fitNonlinear(
  model: NonlinearModel,
  x: readonly number[],
  y: readonly number[],
  p0: readonly number[],
  o: LsqOptions = {},
): FitResult {
  checkData(x, y, p0.length, o.sigma);
  const w = weightsOf(x.length, o);
  let p = clampTo(p0, o);
  let ne = normalEquations(model, x, y, w, p);
  if (!Number.isFinite(ne.rss)) {
    throw new SteerlabError(
      "bad_input",
      `${model.kind} fit: the starting point gives a non-finite residual`,
      {
        field: "p0",
        got: p0.join(", "),
      },
    );
  }
  let lambda = 1e-3;
  let converged = false;
  let it = 0;
  const maxIt = o.maxIterations ?? 500;
  for (; it < maxIt && !converged; it++) {
    let improved = false;
    while (lambda < 1e16) {
      const A = ne.A.map((row, i) => row.map((v, j) => (i === j ? v + lambda * Math.max(v, 1e-12) : v)));
      const step = solve(A, ne.g);
      if (!step) {
        lambda *= 10;
        continue;
      }
      const pNew = clampTo(
        p.map((v, i) => v + step[i]!),
        o,
      );
      const neNew = normalEquations(model, x, y, w, pNew);
      if (Number.isFinite(neNew.rss) && neNew.rss <= ne.rss) {
        const rel = (ne.rss - neNew.rss) / Math.max(ne.rss, 1e-300);
        const stepSmall = pNew.every((v, i) => Math.abs(v - p[i]!) <= 1e-12 * (Math.abs(p[i]!) + 1e-12));
        p = pNew;
        ne = neNew;
        lambda = Math.max(lambda / 10, 1e-12);
        improved = true;
        if (rel < 1e-14 || stepSmall) converged = true;
        break;
      }
      lambda *= 10;
    }
    if (!improved) converged = true; // no downhill step exists: a (local) minimum to working precision
  }
  const yhat = x.map((xi) => model.f(xi, p));
  return finish(model.kind, model.names, p, ne.A, x, y, yhat, w, o, it, converged);
}

/**
 * Exact linear least squares y ~ sum_j c_j * basis_j(x) (weighted when sigma is given).
 * The fit is solved in one step; the intervals use the same covariance formula as the nonlinear fits.
 */
export function fitLinearBasis(
  kind: string,
  names: readonly string[],
  basis: (x: number) => number[],
  x: readonly number[],
  y: readonly number[],
  o: LsqOptions = {},
): FitResult {
  checkData(x, y, names.length, o.sigma);
  const w = weightsOf(x.length, o);
  const np = names.length;
  const A = Array.from({ length: np }, () => new Array<number>(np).fill(0));
  const g = new Array<number>(np).fill(0);
  for (let i = 0; i < x.length; i++) {
    const B = basis(x[i]!);
    for (let a = 0; a < np; a++) {
      g[a]! += w[i]! * B[a]! * y[i]!;
      for (let b = 0; b < np; b++) A[a]![b]! += w[i]! * B[a]! * B[b]!;
    }
  }
  const c = solve(A, g);
  if (!c) {
    throw new SteerlabError("bad_input", `${kind} fit: the design is singular`, {
      hint: "the x values must take more distinct values than there are parameters",
    });
  }
  const yhat = x.map((xi) => basis(xi).reduce((s, b, j) => s + b * c[j]!, 0));
  return finish(kind, names, c, A, x, y, yhat, w, o, 1, true);
}

/** A parameter of a fit by name (throws on an unknown name, which is a programming error). */
export function param(fit: FitResult, name: string): number {
  const i = fit.names.indexOf(name);
  if (i < 0)
    throw new SteerlabError("bad_input", `fit ${fit.kind} has no parameter ${name}`, {
      expected: fit.names.join(", "),
    });
  return fit.values[i]!;
}
