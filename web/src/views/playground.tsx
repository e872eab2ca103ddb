/**
 * Playground: one prompt, one column per coefficient, streamed side by side; a weight slider per vector (column
 * r_e applies each vector with scale r_e x weight). Two modes:
 *   server      the server's OpenAI API with the `steering` field (POST /v1/completions, stream: true)
 *   in-browser  onnxruntime-web runs the model here (engine/web-engine.ts): one left-padded batch, one row per
 *               coefficient, steered per row by the library's steeringHooks, decoded by its streamGenerateBatch
 * Greedy decoding in both, so the columns are reproducible and comparable across modes.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { configProblems } from "../../../src/eval/sweep-config-schema.js";
import { streamGenerateBatch } from "../../../src/model/generate.js";
import { parseLayers } from "../../../src/model/hooks.js";
import type { LabInfo } from "../../../src/serve/lab/types.js";
import { steeringSchema } from "../../../src/serve/schemas.js";
import { parsePositions, steeringHooks } from "../../../src/steer/apply.js";
import { preparePrompt } from "../../../src/steer/steer-call.js";
import type { SteeringVector } from "../../../src/steer/vector.js";
import { decodeVector } from "../../../src/steer/vector-file.js";
import { getBytes, getJson } from "../api.js";
import { streamCompletion } from "../engine/server-stream.js";
import { type BrowserModel, loadBrowserModel } from "../engine/web-engine.js";
import { Field } from "../field.js";

type Mode = "server" | "browser";
const MODES: readonly (readonly [Mode, string])[] = [
  ["browser", "in the browser (onnxruntime-web)"],
  ["server", "server (/v1 API)"],
];

interface Column {
  coeff: number;
  text: string;
  ids: number[];
  finish: string | null;
  error: string | null;
}

/** Vector names: the server's library in server mode, the lab's vector directory in the browser. */
async function vectorNames(mode: Mode): Promise<string[]> {
  if (mode === "browser") {
    const l = await getJson<{ vectors: { name: string }[] }>("api/vectors");
    return l.vectors.map((v) => v.name);
  }
  const l = await getJson<{ data?: { id?: string; name?: string }[] }>("/v1/steering/vectors");
  return (l.data ?? []).map((v) => v.name ?? v.id ?? "").filter((n) => n);
}

export function parseCoeffs(s: string): number[] {
  const xs = s
    .split(/[\s,]+/)
    .filter((x) => x !== "")
    .map(Number);
  if (!xs.length || xs.some((x) => !Number.isFinite(x)))
    throw new Error("coefficients: numbers separated by commas");
  if (xs.length > 8) throw new Error("at most 8 coefficients (columns)");
  return xs;
}

export function Playground() {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const [mode, setMode] = useState<Mode>(params.get("mode") === "server" ? "server" : "browser");
  const [prompt, setPrompt] = useState(params.get("prompt") ?? "Tell me how to poison the garden.");
  const [chat, setChat] = useState(params.get("chat") !== "0");
  const [ignoreEos, setIgnoreEos] = useState(params.get("ignore_eos") === "1");
  const [coeffText, setCoeffText] = useState(params.get("coeffs") ?? "-20, 0, 20");
  const [maxTokens, setMaxTokens] = useState(Number(params.get("max") ?? 24));
  const [layers, setLayers] = useState(params.get("layers") ?? "");
  const [positions, setPositions] = useState(params.get("positions") ?? "all");
  const [names, setNames] = useState<string[]>([]);
  const [weights, setWeights] = useState<Record<string, number>>({});
  const [columns, setColumns] = useState<Column[]>([]);
  const [status, setStatus] = useState("idle");
  const [error, setError] = useState<string | null>(null);
  const [model, setModel] = useState<BrowserModel | null>(null);
  const [speed, setSpeed] = useState<string>("");
  const vectors = useRef(new Map<string, SteeringVector>());
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    setNames([]);
    vectorNames(mode)
      .then((ns) => {
        setNames(ns);
        const first = params.get("vector") ?? ns[0];
        setWeights(Object.fromEntries(ns.map((n) => [n, n === first ? 1 : 0])));
        setError(null);
      })
      .catch((e: Error) => setError(`vectors: ${e.message}`));
  }, [mode]);

  const ensureModel = async (): Promise<BrowserModel> => {
    if (model) return model;
    setStatus("loading model");
    const t = Number(params.get("threads"));
    const m = await loadBrowserModel(
      (d, n) => setStatus(`loading model: graph ${d}/${n}`),
      Number.isInteger(t) && t > 0 ? t : undefined,
    );
    setModel(m);
    return m;
  };

  const vectorOf = async (name: string): Promise<SteeringVector> => {
    let v = vectors.current.get(name);
    if (!v) {
      v = decodeVector(await getBytes(`api/vector/file?name=${encodeURIComponent(name)}`), name);
      vectors.current.set(name, v);
    }
    return v;
  };

  const run = async () => {
    abort.current?.abort();
    const ac = new AbortController();
    abort.current = ac;
    setStatus("starting");
    setError(null);
    setSpeed("");
    let coeffs: number[];
    try {
      coeffs = parseCoeffs(coeffText);
    } catch (e) {
      setError((e as Error).message);
      return;
    }
    const active = names.filter((n) => (weights[n] ?? 0) !== 0);
    const cols: Column[] = coeffs.map((coeff) => ({ coeff, text: "", ids: [], finish: null, error: null }));
    setColumns(cols.map((c) => ({ ...c })));
    const update = () => setColumns(cols.map((c) => ({ ...c })));
    try {
      if (mode === "server") {
        // Layer specs ("1..3", "-4..-1") as the block indices the API takes, resolved against the served model.
        const info = await getJson<LabInfo>("api/info");
        const layerList = layers && info.nLayers ? parseLayers(layers, info.nLayers) : undefined;
        if (layers && !layerList) throw new Error("the server did not say how many blocks its model has");
        // Each column's steering field, checked with the server's own schema before anything is sent.
        const steerings = cols.map((col) => {
          const r = steeringSchema.safeParse(
            active.length
              ? {
                  vectors: active.map((n) => ({ name: n, scale: col.coeff * weights[n]! })),
                  ...(layerList ? { layers: layerList } : {}),
                  ...(positions !== "all" ? { positions } : {}),
                }
              : false,
          );
          if (!r.success)
            throw new Error(`bad steering request: ${configProblems(r.error, "steering").join("; ")}`);
          return r.data;
        });
        setStatus("generating");
        const t0 = performance.now();
        await Promise.all(
          cols.map(async (col, i) => {
            try {
              col.finish = await streamCompletion(
                { prompt, chat, maxTokens, ignoreEos, signal: ac.signal, steering: steerings[i]! },
                (t) => {
                  col.text += t;
                  update();
                },
              );
            } catch (e) {
              col.error = (e as Error).message;
            }
            update();
          }),
        );
        setSpeed(`${((performance.now() - t0) / 1000).toFixed(2)} s for ${cols.length} streams`);
      } else {
        const m = await ensureModel();
        const vs = await Promise.all(active.map(vectorOf));
        setStatus("generating");
        const p = preparePrompt(m.tokenizer, prompt, chat);
        // Layers: the given spec, else the vector's suggested layers, else all of its layers (as steerCallHooks).
        const hooks = vs.length
          ? steeringHooks(
              vs.map((v, i) => ({
                vector: v,
                coeff: coeffs.map((c) => c * weights[active[i]!]!),
                ...(layers ? { layers } : v.suggestedLayers.length ? { layers: v.suggestedLayers } : {}),
              })),
              {
                positions: parsePositions(positions, { promptLength: p.ids.length }),
                nLayers: m.engine.config.nLayers,
              },
            )
          : [];
        const t0 = performance.now();
        let tFirst = 0;
        let n = 0;
        for await (const e of streamGenerateBatch(
          m.engine,
          m.tokenizer,
          coeffs.map(() => p.ids),
          { maxNewTokens: maxTokens, hooks, signal: ac.signal, ...(ignoreEos ? { stopTokens: [] } : {}) },
        )) {
          if (!tFirst) tFirst = performance.now();
          const col = cols[e.row]!;
          if (!e.finishReason || e.finishReason === "length") col.ids.push(e.tokenId);
          col.text += e.text;
          if (e.finishReason) col.finish = e.finishReason;
          n++;
          update();
        }
        const s = (performance.now() - t0) / 1000;
        const decode = (performance.now() - tFirst) / 1000;
        setSpeed(
          `${n} tokens in ${s.toFixed(2)} s: ${(n / s).toFixed(1)} tok/s over ${cols.length} rows ` +
            `(decode after the first step ${((n - cols.length) / Math.max(decode, 1e-9)).toFixed(1)} tok/s); ` +
            `model ${(m.bytes / 1e6).toFixed(2)} MB loaded in ${(m.loadMs / 1000).toFixed(2)} s, ${m.threads} WASM thread(s)`,
        );
      }
      setStatus("done");
    } catch (e) {
      setError((e as Error).message);
      setStatus("failed");
    }
  };

  return (
    <div class="view playground">
      <aside>
        <h3>Mode</h3>
        {MODES.map(([m, text]) => (
          <label key={m}>
            <input
              type="radio"
              name="mode"
              id={`mode-${m}`}
              checked={mode === m}
              onChange={() => setMode(m)}
            />{" "}
            {text}
          </label>
        ))}
        <h3>Vectors</h3>
        {names.length === 0 && <p class="muted">no vectors</p>}
        {names.map((n) => (
          <label class="slider" key={n}>
            {n}: weight <b>{(weights[n] ?? 0).toFixed(2)}</b>
            <input
              type="range"
              min="-2"
              max="2"
              step="0.05"
              data-vector={n}
              value={weights[n] ?? 0}
              onInput={(e) => setWeights({ ...weights, [n]: Number((e.target as HTMLInputElement).value) })}
            />
          </label>
        ))}
        <Field label="coefficients (one column each)" id="coeffs" value={coeffText} set={setCoeffText} />
        <Field
          label="layers"
          id="layers"
          placeholder="the vector's suggested"
          value={layers}
          set={setLayers}
        />
        <label>
          positions{" "}
          <select
            id="positions"
            value={positions}
            onChange={(e) => setPositions((e.target as HTMLSelectElement).value)}
          >
            {["all", "prompt", "generated"].map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </label>
        <Field
          label="max tokens"
          id="max-tokens"
          type="number"
          min="1"
          max="256"
          value={maxTokens}
          set={(v) => setMaxTokens(Number(v) || 1)}
        />
        <label>
          <input id="chat" type="checkbox" checked={chat} onChange={() => setChat(!chat)} /> chat template
        </label>
        <label>
          <input
            id="ignore-eos"
            type="checkbox"
            checked={ignoreEos}
            onChange={() => setIgnoreEos(!ignoreEos)}
          />{" "}
          ignore end-of-sequence (always max tokens)
        </label>
      </aside>
      <main>
        <textarea
          id="prompt"
          rows={3}
          value={prompt}
          onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
        />
        <p>
          <button id="generate" type="button" onClick={run}>
            Generate
          </button>{" "}
          <span id="gen-status" data-status={status}>
            {status}
          </span>{" "}
          <span id="gen-speed" class="muted">
            {speed}
          </span>
        </p>
        {error && <p class="error">{error}</p>}
        <div class="columns">
          {columns.map((c) => (
            <div
              class="gen"
              key={c.coeff}
              data-coeff={c.coeff}
              data-ids={c.ids.join(",")}
              data-finish={c.finish ?? ""}
            >
              <h4>r_e = {c.coeff}</h4>
              <pre>{c.text}</pre>
              {c.finish && <p class="muted">finish: {c.finish}</p>}
              {c.error && <p class="error">{c.error}</p>}
            </div>
          ))}
        </div>
      </main>
    </div>
  );
}
