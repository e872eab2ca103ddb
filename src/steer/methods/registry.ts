/** Extraction methods by name: the built-ins, and any a user registers (`registerMethod`). */
import { SteerlabError } from "../../errors.js";
import { logistic } from "./logistic.js";
import { meanDiff } from "./mean-diff.js";
import type { ExtractionMethod } from "./method.js";
import { pcaCenter } from "./pca-center.js";
import { repePca } from "./repe-pca.js";

const registry = new Map<string, ExtractionMethod>();

/** Register a method (built-in or user's). Re-registering a name replaces it only with `replace: true`. */
export function registerMethod(m: ExtractionMethod, opts: { replace?: boolean } = {}): void {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(m.name)) {
    throw new SteerlabError("bad_input", `bad method name "${m.name}"`, {
      expected: "lowercase, digits, - or _",
    });
  }
  if (registry.has(m.name) && !opts.replace) {
    throw new SteerlabError("bad_input", `extraction method "${m.name}" is already registered`, {
      hint: "pass { replace: true } to override it",
    });
  }
  registry.set(m.name, m);
}

export function getMethod(name: string): ExtractionMethod {
  const m = registry.get(name);
  if (!m) {
    throw new SteerlabError("not_found", `unknown extraction method "${name}"`, {
      field: "method",
      expected: [...registry.keys()].join(" | "),
      got: name,
    });
  }
  return m;
}

export function methodNames(): string[] {
  return [...registry.keys()];
}

for (const m of [repePca, pcaCenter, meanDiff, logistic]) registerMethod(m);
