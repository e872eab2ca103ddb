/** Fetch helpers for the lab's endpoints (relative to the page, so the lab works under any mount path). */
import type { LabInfo, RunSummary, RunView, VectorSummary, VectorView } from "../../src/serve/lab/types.js";

/** An error answer of the server, in OpenAI's shape. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const KEY = "steerlab-api-key";

/** The API key the user entered (kept for this tab only), sent with every request to the server. */
export function apiKey(): string {
  return sessionStorage.getItem(KEY) ?? "";
}

export function setApiKey(k: string): void {
  sessionStorage.setItem(KEY, k);
}

export function authHeaders(): Record<string, string> {
  const k = apiKey();
  return k ? { Authorization: `Bearer ${k}` } : {};
}

export async function getJson<T>(url: string, init: RequestInit = {}): Promise<T> {
  const r = await fetch(url, {
    ...init,
    headers: { ...authHeaders(), ...(init.headers as Record<string, string>) },
  });
  const text = await r.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(`${url}: HTTP ${r.status}, not JSON: ${text.slice(0, 200)}`, r.status);
  }
  if (!r.ok) {
    const e = (body as { error?: { message?: string } }).error;
    const hint = r.status === 401 ? " (enter the server's API key at the top right)" : "";
    throw new ApiError(`${e?.message ?? `${url}: HTTP ${r.status}`}${hint}`, r.status);
  }
  return body as T;
}

export async function getBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url, { headers: authHeaders() });
  if (!r.ok) throw new ApiError(`${url}: HTTP ${r.status}`, r.status);
  return new Uint8Array(await r.arrayBuffer());
}

export const api = {
  info: () => getJson<LabInfo>("api/info"),
  runs: () => getJson<RunSummary[]>("api/runs"),
  run: (id: string, q: RunQuery = {}) => getJson<RunView>(`api/run?${runQuery(id, q)}`),
  vectors: () =>
    getJson<{ vectors: VectorSummary[]; errors: { file: string; error: string }[] }>("api/vectors"),
  vector: (name: string) => getJson<VectorView>(`api/vector?name=${encodeURIComponent(name)}`),
};

/** buildReport's options as the run endpoints take them (src/serve/lab/routes.ts RunQuery). */
export interface RunQuery {
  budget?: number;
  lambda?: number;
  linearHalfWidth?: number;
  quadraticHalfWidth?: number;
  weighted?: boolean;
}

export function runQuery(id: string, q: RunQuery = {}): string {
  const p = new URLSearchParams({ id });
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || (typeof v === "number" && !Number.isFinite(v))) continue;
    p.set(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  }
  return p.toString();
}

/** The smallest spacing of an r_e grid (NaN for fewer than two distinct values). */
export function gridStep(rGrid: readonly number[]): number {
  const xs = [...rGrid].sort((a, b) => a - b);
  let step = Number.POSITIVE_INFINITY;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[i - 1]!) step = Math.min(step, xs[i]! - xs[i - 1]!);
  return Number.isFinite(step) ? step : Number.NaN;
}

/**
 * Local-fit half widths that hold enough points on this grid: the library's defaults (1 and 2.5, made for the
 * paper's step of 0.2-0.5) or 3 and 5 grid steps, whichever is wider. Sent to the server, which fits.
 */
export function halfWidthsFor(rGrid: readonly number[]): {
  linearHalfWidth: number;
  quadraticHalfWidth: number;
} {
  const step = gridStep(rGrid);
  if (Number.isNaN(step)) return { linearHalfWidth: 1, quadraticHalfWidth: 2.5 };
  return { linearHalfWidth: Math.max(1, 3 * step), quadraticHalfWidth: Math.max(2.5, 5 * step) };
}
