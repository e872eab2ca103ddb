/** A synthetic sweep (seeded) with every part a report shows: behaviour, both helpfulness curves, A1-A3. */
import { diagnoseA1, diagnoseA2, diagnoseA2Margin, diagnoseA3 } from "../../src/eval/score-diagnostics.js";
import { gaussian, rng } from "../../src/model/random.js";
import type { MetricPoint, SweepData } from "../../src/report/types.js";

export function syntheticSweep(seed = 1): SweepData {
  const g = gaussian(rng(seed));
  const rs = Array.from({ length: 41 }, (_, i) => -4 + i * 0.2);
  const pt = (r: number, f: number, sd: number, n: number): MetricPoint => {
    const mean = f + (sd / Math.sqrt(n)) * g();
    return { r, mean, std: sd, se: sd / Math.sqrt(n), n };
  };
  return {
    title: "Synthetic sweep <test & check>",
    metadata: { model: "synthetic", layers: "2..5", seed },
    rGrid: rs,
    tasks: [
      {
        id: "harmful",
        title: "harmful",
        kind: "behavior",
        points: rs.map((r) => ({ ...pt(r, Math.tanh(0.6 * r - 0.3), 0.8, 100), unclear: 0 })),
      },
      {
        id: "mmlu",
        title: "mmlu",
        kind: "helpfulness-full",
        points: rs.map((r) => pt(r, 1 / (1 + 1.5 + 1.5 * 0.25 * r * r), 0.2, 100)),
      },
      {
        id: "mmlu-ad",
        title: "mmlu (A-D)",
        kind: "helpfulness-ad",
        points: rs.map((r) => pt(r, 0.5 / (1 + 0.5 + 0.5 * 0.3 * r * r) + 0.25, 0.2, 100)),
      },
    ],
    diagnostics: {
      a1: diagnoseA1(rs.map((r) => ({ r, values: [0, 1, 2].map(() => 3 * Math.abs(r) + 0.05 * g()) }))),
      a2: diagnoseA2(
        rs.map((r) => ({ r, values: [0, 1, 2].map(() => (r === 0 ? 0 : 1.2 * r + 0.1 * g())) })),
      ),
      a2Margin: diagnoseA2Margin(
        rs.map((r) => ({ r, values: [0, 1, 2].map(() => 1.2 * r - 0.5 + 0.1 * g()) })),
      ),
      a3: diagnoseA3(rs.map((r) => ({ r, values: Array.from({ length: 40 }, () => 0.7 * r * g()) }))),
    },
  };
}
