/**
 * Live view of a sweep: the run's report re-sent by the server (server-sent events, read with fetch so the API key
 * can go along) whenever its results file
 * grows, so progress and the partial curves update while `steerlab sweep` writes. Reloading resumes nothing
 * on the server: the view only reads the store.
 */
import { useEffect, useState } from "preact/hooks";
import { metricOption } from "../../../src/report/charts.js";
import { chartGroups } from "../../../src/report/html.js";
import type { RunSummary, RunView } from "../../../src/serve/lab/types.js";
import { api, authHeaders, halfWidthsFor, runQuery } from "../api.js";
import { Chart } from "../chart.js";
import { readSse } from "../sse.js";

export function Live() {
  const [runs, setRuns] = useState<RunSummary[]>([]);
  const [id, setId] = useState<string | null>(null);
  const [view, setView] = useState<RunView | null>(null);
  const [updates, setUpdates] = useState(0);
  const [state, setState] = useState("connecting");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api
      .runs()
      .then((rs) => {
        setRuns(rs);
        const latest = [...rs].sort((a, b) => b.updated.localeCompare(a.updated))[0];
        const fromHash = new URLSearchParams(location.hash.split("?")[1] ?? "").get("run");
        setId(fromHash ?? latest?.id ?? null);
      })
      .catch((e: Error) => setError(e.message));
  }, []);
  useEffect(() => {
    if (!id) return;
    setView(null);
    setUpdates(0);
    const coeffs = runs.find((r) => r.id === id)?.coeffs ?? [];
    const stop = new AbortController();
    // Reconnects after a dropped connection (a server restart), as EventSource would; stops on unmount.
    const follow = async () => {
      while (!stop.signal.aborted) {
        try {
          const r = await fetch(`api/run/events?${runQuery(id, halfWidthsFor(coeffs))}`, {
            headers: authHeaders(),
            signal: stop.signal,
          });
          if (!r.ok || !r.body) {
            const e = (await r.json().catch(() => null)) as { error?: { message?: string } } | null;
            setError(e?.error?.message ?? `HTTP ${r.status}`);
            setState("closed");
            return;
          }
          setState("live");
          let failed = false;
          await readSse(r.body, (name, data) => {
            if (name === "run") {
              setView(JSON.parse(data) as RunView);
              setUpdates((n) => n + 1);
            } else if (name === "failure") {
              setError((JSON.parse(data) as { error: { message: string } }).error.message);
              failed = true;
              return true;
            }
            return undefined;
          });
          if (failed) {
            setState("closed");
            return;
          }
        } catch {
          if (stop.signal.aborted) return;
        }
        setState("reconnecting");
        await new Promise((ok) => setTimeout(ok, 2000));
      }
    };
    void follow();
    return () => stop.abort();
  }, [id, runs]);
  const p = view?.progress;
  const frac = p?.expected ? Math.min(1, p.records / p.expected) : null;
  return (
    <div class="view live">
      <aside>
        <h3>Run</h3>
        <select value={id ?? ""} onChange={(e) => setId((e.target as HTMLSelectElement).value)}>
          {runs.map((r) => (
            <option key={r.id} value={r.id}>
              {r.id}
            </option>
          ))}
        </select>
        <p class="muted">
          connection: <span id="live-state">{state}</span>, updates: <span id="live-updates">{updates}</span>
        </p>
      </aside>
      <main>
        {error && <p class="error">{error}</p>}
        {p && (
          <section class="progress">
            <p>
              <b id="live-records">{p.records}</b> records
              {p.expected ? ` of ${p.expected} (${((frac ?? 0) * 100).toFixed(0)}%)` : ""} · {p.coeffs} r_e
              values · last write {new Date(p.updated).toLocaleTimeString()}
            </p>
            {frac !== null && (
              <div class="bar">
                <div style={{ width: `${(frac * 100).toFixed(1)}%` }} />
              </div>
            )}
          </section>
        )}
        {view &&
          chartGroups(view.report.tasks).map((g) => (
            <Chart
              key={g.key}
              id={`live-${g.key}`}
              spec={metricOption(g.title, g.y, g.tasks, view.report.fits, view.report.regime)}
            />
          ))}
      </main>
    </div>
  );
}
