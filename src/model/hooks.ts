/**
 * Hook points: the one list of sites, in forward order inside a block, and the one naming scheme used by the
 * graphs, the reference forward, vector files, the CLI and reports.
 *
 *   resid_pre[l] ──► attn_norm ─► attention ─► attn_out[l] ──(+)──► mlp_norm ─► mlp ─► mlp_out[l] ──(+)──► resid_post[l]
 *        └───────────────────────────────────────────────────┘  └──────────────────────────────────┘
 * resid_post[l] is the output of block l = HF hidden_states[l+1] = llama.cpp l_out-l = resid_pre[l+1].
 */
import { SteerlabError } from "../errors.js";

export const SITES = ["resid_pre", "attn_out", "mlp_out", "resid_post"] as const;
export type Site = (typeof SITES)[number];

export interface HookPoint {
  /** 0-based block index (already resolved, non-negative). */
  layer: number;
  site: Site;
}

export function isSite(s: string): s is Site {
  return (SITES as readonly string[]).includes(s);
}

export function hookName(layer: number, site: Site): string {
  return `blocks.${layer}.hook_${site}`;
}

export function parseHookName(name: string): HookPoint {
  const m = /^blocks\.(\d+)\.hook_([a-z_]+)$/.exec(name);
  if (!m || !isSite(m[2]!)) {
    throw new SteerlabError("bad_input", `not a hook name: "${name}"`, {
      expected: `blocks.<layer>.hook_<${SITES.join("|")}>`,
    });
  }
  return { layer: Number(m[1]), site: m[2] };
}

/** Resolve a possibly negative layer index (-1 = last block) against the block count. */
export function resolveLayer(layer: number, nLayers: number): number {
  const l = layer < 0 ? nLayers + layer : layer;
  if (!Number.isInteger(layer) || l < 0 || l >= nLayers) {
    throw new SteerlabError("bad_input", `layer ${layer} out of range`, {
      expected: `an integer in [-${nLayers}, ${nLayers - 1}]`,
      got: String(layer),
    });
  }
  return l;
}

/**
 * Parse a layer list: "3", "-5..-1", "0,2,4", "10..15,-1", "all". Ranges are inclusive. Returns sorted,
 * unique, resolved indices.
 */
export function parseLayers(spec: string, nLayers: number): number[] {
  const s = spec.trim();
  if (s === "all") return Array.from({ length: nLayers }, (_, i) => i);
  const out = new Set<number>();
  for (const part of s.split(",")) {
    const p = part.trim();
    const m = /^(-?\d+)\s*\.\.\s*(-?\d+)$/.exec(p);
    if (m) {
      const a = resolveLayer(Number(m[1]), nLayers);
      const b = resolveLayer(Number(m[2]), nLayers);
      // A reversed range is a typo more often than a wish; silently swapping it would steer other blocks.
      if (a > b) {
        throw new SteerlabError("bad_input", `layer range "${p}" runs backwards (block ${a} to block ${b})`, {
          field: "layers",
          expected: `a range from the lower block to the higher, e.g. "${b}..${a}" (of ${nLayers} blocks)`,
          got: p,
        });
      }
      for (let l = a; l <= b; l++) out.add(l);
    } else if (/^-?\d+$/.test(p)) {
      out.add(resolveLayer(Number(p), nLayers));
    } else {
      throw new SteerlabError("bad_input", `bad layer list "${spec}"`, {
        expected: 'e.g. "3", "0,2,4", "-5..-1" or "all"',
      });
    }
  }
  return [...out].sort((a, b) => a - b);
}

/** After a hook ran: it must edit `hidden` in place, not replace it (the engine reads the original buffer). */
export function checkHookBuffer(after: Float32Array, before: Float32Array, layer: number, site: Site): void {
  if (after !== before || after.length !== before.length) {
    throw new SteerlabError("bad_input", `hook at ${hookName(layer, site)} replaced or resized its buffer`, {
      field: "hooks",
      hint: "edit ctx.hidden in place (ctx.hidden[i] = ...), do not assign a new array",
    });
  }
}
