/**
 * The three scorers of a sweep chunk (batchSize prompts of one task and variant, the r_e values still missing):
 *   behavior-generate   rows = (prompt, r_e) pairs still missing; greedy generation with per-row coefficients
 *   behavior-logprob    rows = prompt + continuation prefixes (merged where one contains another); logits at
 *                       the continuation tokens
 *   mcq                 rows = prompts; the last position's logits (the r_e = 0 rows are the A1/A3 baseline)
 *   mcq, generated      rows = (prompt, r_e) pairs still missing; greedy generation, scored at the first
 *                       generated answer letter (the paper's helpfulness)
 */
import { SteerlabError } from "../errors.js";
import { generateBatch } from "../model/generate.js";
import { openModel, requireTokenizer } from "../model/open.js";
import { classifyKeywords } from "./score-behavior.js";
import { a3Projections, deltaLogitNorm, goodBadLogit } from "./score-diagnostics.js";
import { scoreGeneratedAnswer, scoreHelpfulness } from "./score-helpfulness.js";
import { type Judge, judgeResponses } from "./score-judge.js";
import { scoreLogprobs } from "./score-logprob.js";
import type { SweepRecord } from "./store.js";
import {
  type Ctx,
  commit,
  groups,
  padded,
  prefix,
  requireTokenizerOf,
  steeredForward,
  type Variant,
} from "./sweep-forward.js";
import { sharedForward, sharedPrefixPlan } from "./sweep-shared.js";
import { rowSteeringHooks } from "./sweep-steer.js";
import { DEFAULT_ALIGNED, DEFAULT_MISALIGNED, type LoadedTask, letterIds, rulesOf } from "./tasks.js";

export async function runGenerate(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
): Promise<void> {
  const rules = rulesOf(t.spec);
  for await (const { part, res } of generatedCells(c, t, v, chunk, coeffs)) {
    const verdicts = t.spec.judge
      ? await judgeResponses(
          await judgeOf(c, t),
          part.map((x, k) => ({ instruction: x.it.text ?? x.it.prompt, response: res[k]!.text })),
          t.spec.judge,
        )
      : null;
    commit(
      c,
      part.map((x, k) => {
        const base = {
          task: t.spec.id,
          variant: v.id,
          item: x.it.index,
          r: x.r,
          kind: "behavior-generate" as const,
          text: res[k]!.text,
        };
        const j = verdicts?.[k];
        if (j)
          return { ...base, score: j.score, margin: j.margin, reason: `judge margin ${j.margin.toFixed(3)}` };
        const cl = classifyKeywords(res[k]!.text, rules);
        return { ...base, score: cl.score, reason: cl.reason };
      }),
    );
  }
}

/** The judge of a task: the swept model itself (unsteered calls) or another model, opened once per run. */
async function judgeOf(c: Ctx, t: LoadedTask): Promise<Judge> {
  const key = t.judgeModel ?? "";
  const have = c.judges.get(key);
  if (have) return have;
  let j: Judge & { owned: boolean };
  if (!t.judgeModel)
    j = { engine: c.engine, tokenizer: requireTokenizerOf(c.tokenizer, t.spec.id), owned: false };
  else {
    const m = await openModel(t.judgeModel);
    j = { engine: m.engine, tokenizer: requireTokenizer(m), owned: true };
  }
  c.judges.set(key, j);
  return j;
}

/** Release the judge models this run opened. */
export async function closeJudges(c: Ctx): Promise<void> {
  for (const j of c.judges.values()) if (j.owned) await j.engine.dispose();
  c.judges.clear();
}

/**
 * log p of each continuation token. The row holds prompt + (a sequence starting with) cont[..-1]: cont[k] is
 * predicted at the prompt's last slot + k. logits [B, T, V]; `first` = slot of the prompt's last token.
 */
function contLogprobs(
  logits: Float32Array,
  row: number,
  T: number,
  V: number,
  first: number,
  cont: readonly number[],
): number[] {
  return cont.map((id, k) => {
    const off = (row * T + first + k) * V;
    let m = -Infinity;
    for (let i = 0; i < V; i++) if (logits[off + i]! > m) m = logits[off + i]!;
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(logits[off + i]! - m);
    return Math.min(0, logits[off + id]! - m - Math.log(s));
  });
}

/**
 * Which row serves each continuation. Continuation j needs the row prompt + cont_j[..-1]; when that is a
 * prefix of another continuation's row (" No" and " Sure" both need the bare prompt; " I" is inside
 * " I'm sorry"), one row serves both (causal attention: earlier slots never see later tokens).
 * Returns the needed sequences kept as rows and, per continuation, the index of its row.
 */
export function mergeContinuationRows(needs: readonly (readonly number[])[]): {
  rows: number[];
  of: number[];
} {
  const order = needs.map((_, j) => j).sort((x, y) => needs[y]!.length - needs[x]!.length || x - y);
  const rows: number[] = [];
  const of = new Array<number>(needs.length);
  for (const j of order) {
    const n = needs[j]!;
    const k = rows.findIndex((r) => n.every((id, i) => needs[r]![i] === id));
    if (k >= 0) of[j] = k;
    else of[j] = rows.push(j) - 1;
  }
  return { rows, of };
}

export async function runLogprob(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
): Promise<void> {
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const conts = [...(t.spec.aligned ?? DEFAULT_ALIGNED), ...(t.spec.misaligned ?? DEFAULT_MISALIGNED)];
  const nA = (t.spec.aligned ?? DEFAULT_ALIGNED).length;
  const contIds = conts.map((s) => tok.encode(s, { addSpecialTokens: false }));
  // A2 (the paper's): the first token of each good / bad answer opening, unless the task names its own
  const firstIds = (xs: readonly string[]) => [
    ...new Set(xs.map((x) => tok.encode(x, { addSpecialTokens: false })[0]).filter((x) => x !== undefined)),
  ];
  const good = firstIds(t.spec.a2?.good ?? conts.slice(0, nA));
  const bad = firstIds(t.spec.a2?.bad ?? conts.slice(nA));
  contIds.forEach((ids, i) => {
    if (ids.length === 0)
      throw new SteerlabError("bad_config", "a continuation encodes to no tokens", {
        field: `tasks.${t.spec.id}`,
        got: JSON.stringify(conts[i]),
      });
  });
  // The last continuation token is never an input whose prediction is scored.
  const needs = contIds.map((ci) => ci.slice(0, -1));
  const merged =
    c.opts.mergeRows === false
      ? { rows: needs.map((_, j) => j), of: needs.map((_, j) => j) }
      : mergeContinuationRows(needs);
  const perItem = merged.rows.length;
  // rows [items x merged rows]: prompt + the needed continuation prefix
  const prompts = chunk.map((it) => tok.encode(it.prompt));
  const rows = prompts.flatMap((p) => merged.rows.map((j) => [...p, ...needs[j]!]));
  const batch = padded(rows);
  for await (const { g, logits, V } of allLogitGroups(c, v, batch, rows.length, coeffs)) {
    const recs: SweepRecord[] = [];
    g.forEach((r, k) => {
      chunk.forEach((it, i) => {
        const lp = contIds.map((ci, j) => {
          const local = i * perItem + merged.of[j]!;
          const first = batch.T - rows[local]!.length + prompts[i]!.length - 1; // left padding + prompt's last slot
          return contLogprobs(logits, k * rows.length + local, batch.T, V, first, ci);
        });
        const s = scoreLogprobs(lp.slice(0, nA), lp.slice(nA));
        // next-token logits right after the prompt (row of continuation 0, at the prompt's last slot)
        const l0 = i * perItem + merged.of[0]!;
        const at =
          ((k * rows.length + l0) * batch.T + batch.T - rows[l0]!.length + prompts[i]!.length - 1) * V;
        const goodBad = goodBadLogit(logits.subarray(at, at + V), good, bad);
        recs.push({
          task: t.spec.id,
          variant: v.id,
          item: it.index,
          r,
          kind: "behavior-logprob",
          score: s.score,
          margin: s.margin,
          soft: s.soft,
          goodBad,
        });
      });
    });
    commit(c, recs);
  }
}

/**
 * The paper's helpfulness: greedy generation of maxNewTokens (default 16) per (question, r_e), every token
 * steered; the logits of each generated step are kept until the row's first answer letter.
 */
async function runMcqGenerated(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
  diag: boolean,
): Promise<void> {
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const letters = letterIds(tok);
  // A1/A3 compare each generation's first step (the steered next-token logits) with the unsteered ones
  let base: Float32Array | null = null;
  if (diag) {
    const batch = padded(chunk.map((it) => tok.encode(it.prompt)));
    base = await steeredForward(
      c,
      batch,
      await prefix(c, batch, v.layers[0]!),
      v,
      chunk.map(() => 0),
      "last",
    );
  }
  const isLetter = new Set(Object.values(letters).flat());
  // per row: logits of each step up to and including the first letter (later steps are not needed)
  let steps: Float32Array[][] = [];
  let found: boolean[] = [];
  const onPart = (rows: number) => {
    steps = Array.from({ length: rows }, () => []);
    found = Array.from({ length: rows }, () => false);
  };
  const onLogits = (e: { row: number; tokenId: number; logits: Float32Array }) => {
    if (found[e.row]) return;
    steps[e.row]!.push(e.logits.slice());
    if (isLetter.has(e.tokenId)) found[e.row] = true;
  };
  for await (const { part, res } of generatedCells(c, t, v, chunk, coeffs, { onPart, onLogits })) {
    commit(
      c,
      part.map((x, k) => {
        const h = scoreGeneratedAnswer(steps[k]!, res[k]!.ids, letters, x.it.correct!);
        const diagnostics: Pick<SweepRecord, "dNorm" | "a3"> = {};
        if (base) {
          const V = base.length / chunk.length;
          const i = chunk.indexOf(x.it);
          const b0 = base.subarray(i * V, (i + 1) * V);
          const ids = letters[x.it.correct!];
          const correctId = ids.reduce((a, id) => (b0[id]! > b0[a]! ? id : a), ids[0]!);
          diagnostics.dNorm = deltaLogitNorm(b0, steps[k]![0]!);
          diagnostics.a3 = a3Projections(b0, steps[k]![0]!, correctId, 10);
        }
        return {
          ...diagnostics,
          task: t.spec.id,
          variant: v.id,
          item: x.it.index,
          r: x.r,
          kind: "mcq" as const,
          score: h.correct ? 1 : 0,
          pFull: h.pFull,
          pRelative: h.pRelative,
          predicted: h.predicted ?? "",
          text: res[k]!.text,
        };
      }),
    );
  }
}

export async function runMcq(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
  diag: boolean,
): Promise<void> {
  if (t.spec.helpfulness === "generated") return runMcqGenerated(c, t, v, chunk, coeffs, diag);
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const letters = letterIds(tok);
  const prompts = chunk.map((it) => tok.encode(it.prompt));
  const L = v.layers[0]!;
  // Few-shot prompts share their examples: run them once per r_e and fork (sweep-shared.ts) when cheaper.
  const shared = sharedPrefixPlan(c, prompts, L);
  const batch = padded(prompts);
  const hidden = shared ? null : await prefix(c, batch, L);
  const B = chunk.length;
  const forward = (g: readonly number[]) =>
    shared
      ? sharedForward(c, shared, v, g)
      : steeredForward(
          c,
          batch,
          hidden,
          v,
          g.flatMap((r) => chunk.map(() => r)),
          "last",
        );
  let base: Float32Array | null = null;
  // The baseline of A1/A3 is the r_e = 0 cell itself when it is still to do: put it first and reuse its rows.
  const todo = coeffs.includes(0) ? [0, ...coeffs.filter((r) => r !== 0)] : [...coeffs];
  if (diag && !todo.includes(0)) base = await forward([0]);
  const maxRows = Math.min(c.opts.maxRows ?? 32, shared?.maxRows ?? Number.POSITIVE_INFINITY);
  for (const g of groups(todo, B, maxRows)) {
    const logits = await forward(g);
    const V = logits.length / (g.length * B);
    if (diag && !base) base = logits.slice(0, B * V); // rows of r_e = 0, [B, V]
    const recs: SweepRecord[] = [];
    g.forEach((r, k) => {
      chunk.forEach((it, i) => {
        const row = logits.subarray((k * B + i) * V, (k * B + i + 1) * V);
        const h = scoreHelpfulness(row, letters, it.correct!, { input: "logits" });
        const rec: SweepRecord = {
          task: t.spec.id,
          variant: v.id,
          item: it.index,
          r,
          kind: "mcq",
          score: h.correct ? 1 : 0,
          pFull: h.pFull,
          pRelative: h.pRelative,
          predicted: h.predicted,
        };
        if (base) {
          const b0 = base.subarray(i * V, (i + 1) * V);
          const ids = letters[it.correct!];
          const correctId = ids.reduce((a, id) => (b0[id]! > b0[a]! ? id : a), ids[0]!);
          rec.dNorm = deltaLogitNorm(b0, row);
          rec.a3 = a3Projections(b0, row, correctId, 10);
        }
        recs.push(rec);
      });
    });
    commit(c, recs);
  }
}

/**
 * cloze: P(the answer) over the full vocabulary = exp(sum of its tokens' log-probs) after the prompt, and
 * accuracy = the answer's first token is the argmax at the answer position. One row per prompt + answer[..-1].
 */
export async function runCloze(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
): Promise<void> {
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const prompts = chunk.map((it) => tok.encode(it.prompt));
  // The answer's tokens as they follow the prompt: prompt + answer encoded together, minus the prompt's
  // tokens (SentencePiece-style vocabularies fold the space into the word: "very happy" -> "▁very", "▁happy").
  const answers = chunk.map((it, i) => {
    const full = tok.encode(it.prompt + it.answer!);
    const p = prompts[i]!;
    const ids = p.every((id, j) => full[j] === id)
      ? full.slice(p.length)
      : tok.encode(it.answer!, { addSpecialTokens: false });
    if (ids.length === 0)
      throw new SteerlabError("bad_input", "a cloze answer encodes to no tokens", {
        field: `tasks.${t.spec.id}`,
        got: JSON.stringify(it.answer),
      });
    return ids;
  });
  const rows = prompts.map((p, i) => [...p, ...answers[i]!.slice(0, -1)]);
  const batch = padded(rows);
  for await (const { g, logits, V } of allLogitGroups(c, v, batch, rows.length, coeffs)) {
    const recs: SweepRecord[] = [];
    g.forEach((r, k) => {
      chunk.forEach((it, i) => {
        const row = k * rows.length + i;
        const first = batch.T - rows[i]!.length + prompts[i]!.length - 1;
        const lp = contLogprobs(logits, row, batch.T, V, first, answers[i]!);
        const at = (row * batch.T + first) * V;
        let best = 0;
        for (let j = 1; j < V; j++) if (logits[at + j]! > logits[at + best]!) best = j;
        recs.push({
          task: t.spec.id,
          variant: v.id,
          item: it.index,
          r,
          kind: "cloze",
          score: best === answers[i]![0] ? 1 : 0,
          pFull: Math.exp(lp.reduce((a, b) => a + b, 0)),
        });
      });
    });
    commit(c, recs);
  }
}

/**
 * Greedy generations of the (item, r_e) cells of a chunk not yet stored, maxRows rows per batch, each row steered
 * with its own coefficient. `onPart` is told the row count before each batch, `onLogits` sees every step's logits.
 */
async function* generatedCells(
  c: Ctx,
  t: LoadedTask,
  v: Variant,
  chunk: LoadedTask["items"],
  coeffs: readonly number[],
  watch: {
    onPart?: (rows: number) => void;
    onLogits?: (e: { row: number; tokenId: number; logits: Float32Array }) => void;
  } = {},
) {
  const tok = requireTokenizerOf(c.tokenizer, t.spec.id);
  const cells = coeffs.flatMap((r) =>
    chunk.filter((it) => !c.store.has(t.spec.id, v.id, it.index, r)).map((it) => ({ it, r })),
  );
  const maxRows = c.opts.maxRows ?? 32;
  for (let s = 0; s < cells.length; s += maxRows) {
    const part = cells.slice(s, s + maxRows);
    c.opts.signal?.throwIfAborted();
    watch.onPart?.(part.length);
    const res = await generateBatch(
      c.engine,
      tok,
      part.map((x) => x.it.prompt),
      {
        maxNewTokens: t.spec.maxNewTokens ?? 16,
        hooks: rowSteeringHooks(
          v.vector,
          v.layers,
          part.map((x) => x.r),
        ),
        signal: c.opts.signal,
        ...(watch.onLogits ? { onLogits: watch.onLogits } : {}),
      },
    );
    c.opts.signal?.throwIfAborted(); // an aborted generation is cut short: never store it
    c.stats.forwards++;
    yield { part, res };
  }
}

/**
 * Steered logits at every position of `batch` (its rows repeated once per r_e), r_e values grouped so that one
 * forward's logits ([rows, T, V] floats) stay under ~256 MiB; the unsteered prefix below the first steered layer
 * is computed once and shared by every group.
 */
async function* allLogitGroups(
  c: Ctx,
  v: Variant,
  batch: ReturnType<typeof padded>,
  nRows: number,
  coeffs: readonly number[],
) {
  const hidden = await prefix(c, batch, v.layers[0]!);
  const cap = Math.floor(2 ** 26 / (batch.T * c.engine.config.vocabSize));
  for (const g of groups(coeffs, nRows, Math.min(c.opts.maxRows ?? 32, cap))) {
    const rowCoeffs = g.flatMap((r) => Array.from({ length: nRows }, () => r));
    const logits = await steeredForward(c, batch, hidden, v, rowCoeffs, "all");
    yield { g, logits, V: logits.length / (rowCoeffs.length * batch.T) };
  }
}
