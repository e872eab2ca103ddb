/**
 * The sweep config and its task specs as zod schemas: the one validation the CLI, the library, the experiment
 * runner and the web lab's forms share. Every problem is collected (a field never stops the others) and worded
 * for the config file: `configProblems` turns the issues into "tasks[0].kind: expected ..." lines. A leaf module
 * (zod and constants only), so the browser bundle can import it.
 */
import { z } from "zod";
import { SteerlabError } from "../errors.js";
import { BACKENDS } from "../model/backends.js";
import type { JudgeSpec } from "./score-judge.js";

export const TASK_KINDS = ["behavior-generate", "behavior-logprob", "mcq", "cloze"] as const;
export type TaskKind = (typeof TASK_KINDS)[number];
export const HELPFULNESS_MODES = ["generated", "next-token"] as const;
export type HelpfulnessMode = (typeof HELPFULNESS_MODES)[number];

/** Most r_e values one sweep takes: each is a full pass over every task (the paper's grids have 41-51). */
export const MAX_COEFFS = 10_000;

/** "-2:2:0.5" (inclusive range), "-1,0,1" or a single number. Values are rounded to 1e-9 to keep keys stable. */
export function parseCoeffs(spec: string | number | readonly number[], field = "coeffs"): number[] {
  const round = (x: number) => Number(x.toFixed(9)) + 0; // + 0 turns -0 into 0
  if (typeof spec === "number") return [round(spec)];
  if (Array.isArray(spec)) {
    if (spec.length > MAX_COEFFS)
      throw new SteerlabError("bad_config", `too many coefficients (limit ${MAX_COEFFS})`, {
        field,
        got: `${spec.length} values`,
      });
    if (spec.length === 0 || spec.some((x) => typeof x !== "number" || !Number.isFinite(x)))
      throw new SteerlabError("bad_config", "coeffs must be finite numbers", { field });
    return [...new Set(spec.map(round))].sort((a, b) => a - b);
  }
  const s = String(spec).trim();
  const m = /^(-?[\d.]+(?:e-?\d+)?):(-?[\d.]+(?:e-?\d+)?):([\d.]+(?:e-?\d+)?)$/.exec(s);
  if (m) {
    const [a, b, step] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (!(step > 0) || !(b >= a) || !Number.isFinite(a) || !Number.isFinite(b))
      throw new SteerlabError("bad_config", "bad coefficient range", {
        field,
        expected: "start:stop:step with start <= stop, step > 0",
        got: s,
      });
    const n = Math.floor((b - a) / step + 1e-9);
    if (n + 1 > MAX_COEFFS)
      throw new SteerlabError("bad_config", `coefficient grid too large (limit ${MAX_COEFFS} values)`, {
        field,
        got: `${n + 1} values`,
      });
    return Array.from({ length: n + 1 }, (_, i) => round(a + i * step));
  }
  const parts = s.split(",", MAX_COEFFS + 1).map((x) => (x.trim() === "" ? Number.NaN : Number(x.trim())));
  if (parts.some((x) => !Number.isFinite(x)) || s === "")
    throw new SteerlabError("bad_config", "bad coefficient list", {
      field,
      expected: "start:stop:step or a,b,c",
      got: s,
    });
  return parseCoeffs(parts, field);
}

/**
 * A field checked by `schema`: any failure is reported as `message` (one problem), or, without a message, as the
 * schema's own issues. A failed field reads as null and never aborts its object, so the object's other fields
 * and its cross-field checks still report (the config shows every problem at once).
 */
function checked<T extends z.ZodTypeAny>(schema: T, message?: string) {
  return z.unknown().transform((v, ctx): z.output<T> => {
    const r = schema.safeParse(v);
    if (r.success) return r.data;
    if (message !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message });
    else for (const issue of r.error.issues) ctx.addIssue(issue);
    return null as never;
  });
}

/** An object with these keys only: a value of another type is `notObject`, each extra key is `unknownKey`. */
function objectOf<S extends z.ZodRawShape>(shape: S, notObject: string, unknownKey: string) {
  return z.object(shape, { invalid_type_error: notObject, required_error: notObject }).strict(unknownKey);
}

const known = (shape: z.ZodRawShape) => `unknown key (known: ${Object.keys(shape).join(", ")})`;
const oneOf = <T>(values: readonly T[]) => z.custom<T>((v) => (values as readonly unknown[]).includes(v));
const strList = checked(z.array(z.string().min(1)).min(1), "expected a non-empty list of non-empty strings");

/** The config's wording of zod issues: "path: message", one line per unknown key. */
export function configProblems(error: z.ZodError, prefix = ""): string[] {
  const at = (path: readonly (string | number)[]) =>
    path.reduce<string>((s, k) => (typeof k === "number" ? `${s}[${k}]` : s ? `${s}.${k}` : k), prefix);
  return error.issues.flatMap((i) =>
    i.code === z.ZodIssueCode.unrecognized_keys
      ? i.keys.map((k) => `${at([...i.path, k])}: ${i.message}`)
      : [`${at(i.path)}: ${i.message}`],
  );
}

const range = checked(
  z.tuple([z.number().finite(), z.number().finite()]).refine(([lo, hi]) => lo < hi),
  "[lo, hi] with lo < hi",
);
const halfWidth = checked(z.number().positive().finite(), "a positive number");
/** The report's fit ranges and local windows (`fit:` of a config, the explorer's half-width fields). */
export const fitOptionsSchema = objectOf(
  {
    tanhRange: range.optional(),
    corollaryRange: range.optional(),
    linearHalfWidth: halfWidth.optional(),
    quadraticHalfWidth: halfWidth.optional(),
  },
  "expected { tanhRange?, corollaryRange?, linearHalfWidth?, quadraticHalfWidth? }",
  "unknown key (tanhRange, corollaryRange, linearHalfWidth, quadraticHalfWidth)",
);

/** Keyword rules of a behavior-generate task: a named preset or explicit keyword lists. */
export type RulesSpec =
  | "refusal"
  | "disagree"
  | {
      aligned: string[];
      misaligned: string[];
      fallback?: "aligned" | "misaligned" | "unclear";
      alignedUnless?: string[];
      misalignedUnless?: string[];
      caseSensitive?: boolean;
      gibberish?: boolean;
    };

const phrases = z.array(z.string().min(1, "phrases must not be empty"));
/**
 * Rules from a config file: every item a non-empty string, the fallback one of the three labels. A list may be
 * empty only when the fallback is its class (the paper's "contains X and none of Y, else misaligned").
 */
const rulesSchema: z.ZodType<RulesSpec> = z.union([
  z.literal("refusal"),
  z.literal("disagree"),
  z
    .object({
      aligned: phrases,
      misaligned: phrases,
      fallback: z.enum(["aligned", "misaligned", "unclear"]).optional(),
      alignedUnless: phrases.optional(),
      misalignedUnless: phrases.optional(),
      caseSensitive: z.boolean().optional(),
      gibberish: z.boolean().optional(),
    })
    .strict()
    .superRefine((r, ctx) => {
      for (const side of ["aligned", "misaligned"] as const)
        if (r[side].length === 0 && r.fallback !== side)
          ctx.addIssue({
            code: "custom",
            path: [side],
            message: `needs at least one phrase (or fallback: ${side})`,
          });
    }),
]);
const RULES_FORM =
  '("refusal", "disagree" or { aligned: [...], misaligned: [...], fallback?, alignedUnless?, misalignedUnless?, caseSensitive?, gibberish? })';
const rules = z.unknown().transform((v, ctx): RulesSpec => {
  const r = rulesSchema.safeParse(v);
  if (r.success) return r.data;
  for (const issue of r.error.issues)
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: issue.path.length ? [issue.path.join(".")] : [],
      message: `${issue.message} ${RULES_FORM}`,
    });
  return null as never;
});

/** A judge: true (the swept model itself, unsteered, with the default prompt) or its settings. */
const judgeSchema: z.ZodType<JudgeSpec, z.ZodTypeDef, unknown> = z.preprocess(
  (v) => (v === true ? {} : v),
  objectOf(
    {
      model: checked(z.string(), "expected a string").optional(),
      template: checked(z.string(), "expected a string")
        .pipe(z.string().refine((s) => s.includes("{response}"), "needs a {response} placeholder"))
        .optional(),
      aligned: strList.optional(),
      misaligned: strList.optional(),
      threshold: checked(z.number().min(0), "a number >= 0").optional(),
      chat: checked(z.boolean(), "true or false").optional(),
    },
    "true or { model?, template?, aligned?, misaligned?, threshold?, chat? }",
    "unknown key",
  ),
);

const A2_FORM = "{ good: [...], bad: [...] }";
/** The A2 token sets: both lists, or (given one alone) none. */
const a2Schema = z
  .object({ good: strList.optional(), bad: strList.optional() }, { invalid_type_error: A2_FORM })
  .passthrough()
  .superRefine((a, ctx) => {
    if (!a.good && !a.bad) ctx.addIssue({ code: z.ZodIssueCode.custom, message: A2_FORM });
  })
  .transform((a) => (a.good && a.bad ? { good: a.good, bad: a.bad } : undefined));

const SYSTEM_NEEDS_CHAT = "a string, with chat: true (the system message goes into the chat template)";
const count = (min: number) => checked(z.number().int().min(min), "expected a positive integer").optional();
const taskShape = {
  id: checked(z.string().regex(/^[\w.-]+$/), "letters, digits, _ . - only").optional(),
  kind: checked(oneOf(TASK_KINDS), `expected ${TASK_KINDS.join(" | ")}`),
  data: checked(z.string().min(1), "expected a file path"),
  dataKind: checked(z.enum(["instructions", "statements"]), "instructions | statements").optional(),
  template: checked(z.string(), "expected a string").optional(),
  chat: checked(z.boolean(), "expected true or false").optional(),
  system: checked(z.string(), SYSTEM_NEEDS_CHAT).optional(),
  limit: count(1),
  rules: rules.optional(),
  maxNewTokens: count(1),
  aligned: strList.optional(),
  misaligned: strList.optional(),
  shots: count(0),
  judge: checked(judgeSchema).optional(),
  helpfulness: checked(oneOf(HELPFULNESS_MODES), HELPFULNESS_MODES.join(" | ")).optional(),
  a2: checked(a2Schema).optional(),
  shotsFrom: checked(z.string().min(1), "a file path (e.g. the MMLU dev split)").optional(),
  subject: checked(
    z.union([z.boolean(), z.string()]),
    "true (from the data or file name) or a subject name",
  ).optional(),
};

/**
 * One task of a sweep. Its output keeps the key order of the run identity (run.json hashes it); the id is
 * undefined when the config gives none (the sweep names it `<kind>-<index>`).
 */
export const taskSpecSchema = objectOf(taskShape, "expected an object", known(taskShape))
  .superRefine((o, ctx) => {
    if (typeof o.system === "string" && o.chat !== true)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["system"], message: SYSTEM_NEEDS_CHAT });
  })
  .transform((o) => ({
    id: o.id,
    kind: o.kind,
    data: o.data,
    ...(o.dataKind ? { dataKind: o.dataKind } : {}),
    ...(o.template !== undefined ? { template: o.template } : {}),
    ...(o.chat !== undefined ? { chat: o.chat } : {}),
    ...(o.system !== undefined ? { system: o.system } : {}),
    ...(o.limit !== undefined ? { limit: o.limit } : {}),
    ...(o.rules !== undefined ? { rules: o.rules } : {}),
    ...(o.maxNewTokens !== undefined ? { maxNewTokens: o.maxNewTokens } : {}),
    ...(o.aligned ? { aligned: o.aligned } : {}),
    ...(o.misaligned ? { misaligned: o.misaligned } : {}),
    ...(o.shots !== undefined ? { shots: o.shots } : {}),
    ...(o.helpfulness !== undefined ? { helpfulness: o.helpfulness } : {}),
    ...(o.shotsFrom !== undefined ? { shotsFrom: o.shotsFrom } : {}),
    ...(o.subject !== undefined ? { subject: o.subject } : {}),
    ...(o.judge ? { judge: o.judge } : {}),
    ...(o.a2 ? { a2: o.a2 } : {}),
  }));
type ParsedTask = z.output<typeof taskSpecSchema>;

/** Tasks with their ids (given, or `<kind>-<index in the list>`); failed tasks (null) are left out. */
function withIds(tasks: readonly (ParsedTask | null)[]) {
  return tasks.flatMap((t, i) => (t ? [{ ...t, id: t.id ?? `${t.kind}-${i}` }] : []));
}

const vectorItem = checked(
  z.union([z.string(), z.object({ source: z.string(), name: z.unknown() }).passthrough()]),
  "expected a path or { name, source }",
);
/** Vectors with their names (given, `random<seed>` for a random one, else `v<index>`); failed ones left out. */
function named(items: readonly (z.output<typeof vectorItem> | null)[]) {
  return items.flatMap((v, i) =>
    typeof v === "string"
      ? [{ name: v.startsWith("random:") ? v.replace(":", "") : `v${i}`, source: v }]
      : v
        ? [{ name: typeof v.name === "string" ? v.name : `v${i}`, source: v.source }]
        : [],
  );
}
const unique = (what: string, keys: readonly string[], ctx: z.RefinementCtx) => {
  if (new Set(keys).size !== keys.length)
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${what} must be unique` });
};

const layerSpec = z.union([z.string(), z.number(), z.nan()]);
const sweepShape = {
  model: checked(z.string().min(1), "expected a path"),
  backend: checked(oneOf(BACKENDS), BACKENDS.join(" | ")).optional(),
  vectors: checked(z.array(z.unknown()).min(1), 'expected a list of { name, source } (or "vector: <path>")')
    .pipe(z.array(vectorItem))
    .superRefine((items, ctx) =>
      unique(
        "names",
        named(items ?? []).map((v) => v.name),
        ctx,
      ),
    )
    .transform(named),
  /** One vector; read as `vectors: [vector]` when `vectors` is absent. */
  vector: z.unknown().optional(),
  layers: checked(
    z.union([layerSpec, z.array(layerSpec)]).transform((l) => (Array.isArray(l) ? l : [l]).map(String)),
    'a list of layer specs like "8..15"',
  ).optional(),
  coeffs: z.unknown().transform((v, ctx): number[] => {
    try {
      if (v !== undefined) return parseCoeffs(v as string | number[]);
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: "expected start:stop:step or a list" });
    } catch (e) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (e as Error).message });
    }
    return null as never;
  }),
  tasks: checked(z.array(z.unknown()).min(1), "expected a non-empty list")
    .pipe(z.array(checked(taskSpecSchema)))
    .superRefine((tasks, ctx) =>
      unique(
        "ids",
        withIds(tasks ?? []).map((t) => t.id),
        ctx,
      ),
    )
    .transform(withIds),
  batchSize: checked(z.number().int().min(1), "a positive integer").optional(),
  diagnostics: checked(z.boolean(), "true or false").optional(),
  protocol: checked(z.literal("paper"), '"paper" or absent').optional(),
  fit: checked(fitOptionsSchema).optional(),
  coeffUnits: checked(z.enum(["absolute", "relative"]), "absolute | relative").optional(),
};

/**
 * A sweep config (YAML/JSON or flags) to the validated config, less its baseDir. `protocol: paper` sets the
 * published defaults: mcq helpfulness from a 16-token greedy generation.
 */
export const sweepConfigSchema = z.preprocess(
  (raw) => {
    const o = raw as Record<string, unknown>;
    return raw && typeof raw === "object" && o.vectors == null && o.vector !== undefined
      ? { ...o, vectors: [o.vector] }
      : raw;
  },
  objectOf(sweepShape, "a sweep config is an object", known(sweepShape)).transform((o) => {
    const paper = o.protocol === "paper";
    return {
      model: o.model,
      ...(o.backend ? { backend: o.backend } : {}),
      vectors: o.vectors,
      ...(o.layers ? { layers: o.layers } : {}),
      coeffs: o.coeffs,
      tasks: o.tasks.map((t) =>
        paper && t.kind === "mcq" && !t.helpfulness ? { ...t, helpfulness: "generated" as const } : t,
      ),
      ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
      ...(o.diagnostics !== undefined ? { diagnostics: o.diagnostics } : {}),
      ...(paper ? { protocol: "paper" as const } : {}),
      ...(o.fit ? { fit: o.fit } : {}),
      ...(o.coeffUnits === "relative" ? { coeffUnits: "relative" as const } : {}),
    };
  }),
);
