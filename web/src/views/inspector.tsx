/**
 * Vector inspector: a vector's per-layer diagnostics as extraction stored them (steer/diagnostics.ts: held-out
 * and train accuracy, explained variance, projection gap against the residual norm, cosine with the mean
 * difference), the layers the file suggests and the block suggestLayers picks from the diagnostics.
 */
import { useEffect, useState } from "preact/hooks";
import { PALETTE } from "../../../src/report/charts.js";
import type { VectorSummary, VectorView } from "../../../src/serve/lab/types.js";
import { api } from "../api.js";
import { Chart } from "../chart.js";

const fmt = (v: number | null | undefined, p = 3) =>
  v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toPrecision(p);

function accuracyChart(v: VectorView) {
  const L = v.layerViews;
  const line = (name: string, data: (number | null)[], color: string, dashed = false) => ({
    name,
    type: "line",
    data: L.map((l, i) => [l.layer, data[i]]),
    symbolSize: 6,
    connectNulls: false,
    itemStyle: { color },
    lineStyle: { color, type: dashed ? "dashed" : "solid" },
  });
  const suggested = new Set(v.suggestedLayers);
  return {
    option: {
      title: { text: `${v.name}: separation per layer`, left: "center", textStyle: { fontSize: 13 } },
      legend: { bottom: 0, textStyle: { fontSize: 10 } },
      grid: { left: 60, right: 24, top: 40, bottom: 56 },
      tooltip: { trigger: "axis" },
      xAxis: {
        type: "value",
        name: "layer",
        nameLocation: "middle",
        nameGap: 22,
        minInterval: 1,
        // Half a layer of margin on each side, so the first and last layers are not on the frame.
        min: (v: { min: number }) => v.min - 0.5,
        max: (v: { max: number }) => v.max + 0.5,
        axisLabel: { formatter: (x: number) => (Number.isInteger(x) ? String(x) : "") },
      },
      yAxis: { type: "value", min: 0, max: 1, name: "fraction", nameLocation: "middle", nameGap: 42 },
      series: [
        line(
          "held-out accuracy",
          L.map((l) => l.diagnostics?.heldOutAccuracy ?? null),
          PALETTE[0]!,
        ),
        line(
          "train accuracy",
          L.map((l) => l.diagnostics?.trainAccuracy ?? null),
          PALETTE[0]!,
          true,
        ),
        line(
          "explained variance (1st PC)",
          L.map((l) => l.diagnostics?.explainedVariance ?? null),
          PALETTE[2]!,
        ),
        line(
          "|cos(v, mean difference)|",
          L.map((l) => (l.diagnostics ? Math.abs(l.diagnostics.cosMeanDiff) : null)),
          PALETTE[4]!,
        ),
        {
          name: "suggested layers",
          type: "scatter",
          symbol: "diamond",
          symbolSize: 14,
          data: L.filter((l) => suggested.has(l.layer)).map((l) => [
            l.layer,
            l.diagnostics?.heldOutAccuracy ?? l.diagnostics?.trainAccuracy ?? 1,
          ]),
          itemStyle: { color: PALETTE[1] },
          z: 5,
        },
      ],
    },
    size: { height: 340 },
  };
}

function scaleChart(v: VectorView) {
  const L = v.layerViews;
  return {
    option: {
      title: {
        text: "Scale: projection gap, mean difference and residual norm",
        left: "center",
        textStyle: { fontSize: 13 },
      },
      legend: { bottom: 0, textStyle: { fontSize: 10 } },
      grid: { left: 60, right: 24, top: 40, bottom: 56 },
      tooltip: { trigger: "axis" },
      xAxis: {
        type: "category",
        data: L.map((l) => String(l.layer)),
        name: "layer",
        nameLocation: "middle",
        nameGap: 22,
      },
      yAxis: { type: "value", name: "norm", nameLocation: "middle", nameGap: 42 },
      series: [
        {
          name: "projection gap",
          type: "bar",
          data: L.map((l) => l.diagnostics?.projectionGap ?? null),
          itemStyle: { color: PALETTE[0] },
        },
        {
          name: "||mean(pos) − mean(neg)||",
          type: "bar",
          data: L.map((l) => l.diagnostics?.meanDiffNorm ?? null),
          itemStyle: { color: PALETTE[3] },
        },
        {
          name: "mean ||h|| (residual norm)",
          type: "bar",
          data: L.map((l) => l.diagnostics?.residNorm ?? null),
          itemStyle: { color: PALETTE[7] },
        },
      ],
    },
    size: { height: 300 },
  };
}

export function Inspector() {
  const [list, setList] = useState<{
    vectors: VectorSummary[];
    errors: { file: string; error: string }[];
  } | null>(null);
  const [name, setName] = useState<string | null>(null);
  const [v, setV] = useState<VectorView | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api
      .vectors()
      .then((l) => {
        setList(l);
        if (l.vectors.length) setName(l.vectors[0]!.name);
      })
      .catch((e: Error) => setError(e.message));
  }, []);
  useEffect(() => {
    if (!name) return;
    api
      .vector(name)
      .then((x) => {
        setV(x);
        setError(null);
      })
      .catch((e: Error) => setError(e.message));
  }, [name]);
  const hasDiag = v?.layerViews.some((l) => l.diagnostics) ?? false;
  return (
    <div class="view inspector">
      <aside>
        <h3>Vectors</h3>
        {list?.vectors.length === 0 && <p class="muted">No vectors in the server's vector directory.</p>}
        <ul class="vectors">
          {list?.vectors.map((x) => (
            <li key={x.name}>
              <label>
                <input
                  type="radio"
                  name="vector"
                  checked={x.name === name}
                  onChange={() => setName(x.name)}
                />{" "}
                {x.name}{" "}
                <span class="muted">
                  ({x.method}, {x.site}, layers {x.layers.join(",")})
                </span>
              </label>
            </li>
          ))}
        </ul>
        {list?.errors.map((e) => (
          <p class="error" key={e.file}>
            {e.file}: {e.error}
          </p>
        ))}
      </aside>
      <main>
        {error && <p class="error">{error}</p>}
        {v && (
          <>
            <h2>{v.name}</h2>
            <p>
              {v.method} at {v.site}, read at {v.readPosition ?? "?"}, {v.scale} directions, hidden size{" "}
              {v.hiddenSize}
              {v.model ? `, for ${v.model}` : ""}
              {v.dataset ? `, from ${v.dataset.size} training rows` : ""}. Suggested layers (file):{" "}
              <b id="suggested">{v.suggestedLayers.join(", ") || "none"}</b>; from the diagnostics
              (suggestLayers): <b id="suggested-diag">{v.suggestedByDiagnostics.join(", ") || "–"}</b>.
            </p>
            {hasDiag ? (
              <>
                <Chart id="chart-accuracy" spec={accuracyChart(v)} />
                <Chart id="chart-scale" spec={scaleChart(v)} />
              </>
            ) : (
              <p class="muted">
                This file holds no extraction diagnostics (e.g. an imported control vector).
              </p>
            )}
            <table class="diag" id="diag-table">
              <thead>
                <tr>
                  <th>layer</th>
                  <th>||v||</th>
                  <th>n</th>
                  <th>held-out acc</th>
                  <th>train acc</th>
                  <th>expl. var</th>
                  <th>dir. var</th>
                  <th>proj. gap</th>
                  <th>||Δmean||</th>
                  <th>resid norm</th>
                  <th>cos(v, Δmean)</th>
                </tr>
              </thead>
              <tbody>
                {v.layerViews.map((l) => {
                  const d = l.diagnostics;
                  return (
                    <tr key={l.layer} class={v.suggestedLayers.includes(l.layer) ? "suggested" : ""}>
                      <td>{l.layer}</td>
                      <td>{fmt(l.norm, 4)}</td>
                      <td>{d?.n ?? "–"}</td>
                      <td>{fmt(d?.heldOutAccuracy)}</td>
                      <td>{fmt(d?.trainAccuracy)}</td>
                      <td>{fmt(d?.explainedVariance)}</td>
                      <td>{fmt(d?.directionVariance)}</td>
                      <td>{fmt(d?.projectionGap)}</td>
                      <td>{fmt(d?.meanDiffNorm)}</td>
                      <td>{fmt(d?.residNorm)}</td>
                      <td>{fmt(d?.cosMeanDiff)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </>
        )}
      </main>
    </div>
  );
}
