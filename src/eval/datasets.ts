/**
 * Loaders for the task data people already have, each a pure parser (text + file name) and a path loader:
 *  - harmful instructions: CSV with a goal / instruction / prompt column (AdvBench style), JSONL, or plain lines;
 *  - MMLU: the release's header-less CSV `question,A,B,C,D,answer`, or JSONL ({question, choices[4], answer}
 *    with answer 0-3 or "A"-"D", or {question, A, B, C, D, answer});
 *  - agree/disagree statements: CSV / JSONL with a statement column (optional label), or plain lines;
 *  - contrastive pairs: CSV / JSONL with positive and negative columns.
 * CSV goes through csv-parse (quotes, commas and newlines inside quotes). Errors name the file and line.
 */
import { parse } from "csv-parse/sync";
import { SteerlabError } from "../errors.js";
import { readTextFile } from "../io/files.js";

export interface Instruction {
  readonly text: string;
  /** 1-based line of the record in its file. */
  readonly line: number;
}

export const LETTERS = ["A", "B", "C", "D"] as const;
export type Letter = (typeof LETTERS)[number];

export interface McQuestion {
  readonly question: string;
  readonly choices: readonly [string, string, string, string];
  readonly answer: Letter;
  readonly line: number;
  /** The MMLU subject, when the file carries it (HF layout: "subject"). */
  readonly subject?: string;
}

export interface Statement {
  readonly text: string;
  /** Expected aligned reaction when the file says so. */
  readonly label?: "agree" | "disagree";
  readonly line: number;
}

export interface ContrastivePair {
  readonly positive: string;
  readonly negative: string;
  readonly line: number;
}

export type DataFormat = "csv" | "jsonl" | "txt";

function bad(
  file: string,
  line: number | undefined,
  message: string,
  extra: { expected?: string; got?: string } = {},
) {
  return new SteerlabError("bad_file", message, {
    file,
    ...(line ? { field: `line ${line}` } : {}),
    ...extra,
  });
}

/** CSV rows with the 1-based line where each record starts. */
export function parseCsvRows(text: string, file: string): { cells: string[]; line: number }[] {
  try {
    const recs = parse(text, {
      info: true,
      raw: true,
      skip_empty_lines: true,
      relax_column_count: true,
      bom: true,
    }) as unknown as {
      record: string[];
      raw: string;
      info: { lines: number };
    }[];
    // info.lines is the line where the record ends; subtract the line breaks inside it to get where it starts.
    return recs.map((r) => {
      const body = r.raw.replace(/^(?:[ \t]*\r?\n)+/, "").replace(/\r?\n$/, ""); // raw carries skipped blank lines
      const inner = (body.match(/\n/g) ?? []).length;
      return { cells: r.record, line: r.info.lines - inner };
    });
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw bad(file, err.lines, `invalid CSV: ${err.message}`);
  }
}

/** JSONL objects with their line numbers (blank lines skipped). */
export function parseJsonl(text: string, file: string): { obj: Record<string, unknown>; line: number }[] {
  const out: { obj: Record<string, unknown>; line: number }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === "") return;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw bad(file, i + 1, `invalid JSON: ${(e as Error).message}`);
    }
    if (!v || typeof v !== "object" || Array.isArray(v))
      throw bad(file, i + 1, "expected a JSON object per line", { got: raw.slice(0, 60) });
    out.push({ obj: v as Record<string, unknown>, line: i + 1 });
  });
  return out;
}

function formatOf(file: string, text: string): DataFormat {
  if (/\.jsonl?$/i.test(file)) return "jsonl";
  if (/\.csv$/i.test(file)) return "csv";
  if (/\.txt$/i.test(file)) return "txt";
  return text.trimStart().startsWith("{") ? "jsonl" : "csv";
}

function column(header: readonly string[], names: readonly string[]): number {
  const lower = header.map((h) => h.trim().toLowerCase());
  for (const n of names) {
    const i = lower.indexOf(n);
    if (i >= 0) return i;
  }
  return -1;
}

function str(file: string, line: number, obj: Record<string, unknown>, keys: readonly string[]): string {
  for (const k of keys) if (typeof obj[k] === "string") return obj[k] as string;
  throw bad(file, line, "missing text field", { expected: keys.join(" | ") });
}

function nonEmpty<T>(file: string, items: T[]): T[] {
  if (items.length === 0) throw bad(file, undefined, "no records found");
  return items;
}

const INSTRUCTION_COLS = ["goal", "instruction", "prompt", "behavior", "text", "question"];

/** Harmful instructions from CSV (header with one of goal/instruction/prompt/behavior/text), JSONL or lines. */
export function parseInstructions(text: string, file: string, format = formatOf(file, text)): Instruction[] {
  if (format === "txt") {
    return nonEmpty(
      file,
      text.split(/\r?\n/).flatMap((t, i) => (t.trim() ? [{ text: t.trim(), line: i + 1 }] : [])),
    );
  }
  if (format === "jsonl")
    return nonEmpty(
      file,
      parseJsonl(text, file).map(({ obj, line }) => ({ text: str(file, line, obj, INSTRUCTION_COLS), line })),
    );
  const rows = parseCsvRows(text, file);
  if (rows.length === 0) throw bad(file, undefined, "no records found");
  const col = column(rows[0]!.cells, INSTRUCTION_COLS);
  if (col < 0)
    throw bad(file, rows[0]!.line, "no instruction column in the header", {
      expected: INSTRUCTION_COLS.join(" | "),
      got: rows[0]!.cells.join(","),
    });
  return nonEmpty(
    file,
    rows.slice(1).map(({ cells, line }) => {
      const t = cells[col];
      if (t === undefined || t.trim() === "") throw bad(file, line, "empty instruction");
      return { text: t, line };
    }),
  );
}

function letterOf(file: string, line: number, v: unknown): Letter {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 4) return LETTERS[v]!;
  if (typeof v === "string") {
    const s = v.trim().toUpperCase();
    if ((LETTERS as readonly string[]).includes(s)) return s as Letter;
    if (/^[0-3]$/.test(s)) return LETTERS[Number(s)]!;
  }
  throw bad(file, line, "answer must be A-D or 0-3", { got: JSON.stringify(v) });
}

/** MMLU questions: header-less release CSV (a header row starting with "question" is skipped) or JSONL. */
export function parseMmlu(text: string, file: string, format = formatOf(file, text)): McQuestion[] {
  if (format === "jsonl") {
    return nonEmpty(
      file,
      parseJsonl(text, file).map(({ obj, line }) => {
        const question = str(file, line, obj, ["question", "input"]);
        let choices: unknown[];
        if (Array.isArray(obj.choices)) choices = obj.choices;
        else choices = LETTERS.map((L) => obj[L]);
        if (choices.length !== 4 || choices.some((c) => typeof c !== "string" && typeof c !== "number")) {
          throw bad(file, line, "need four choices", {
            expected: "choices: [4 strings] or fields A, B, C, D",
            got: JSON.stringify(choices).slice(0, 80),
          });
        }
        const c = choices.map(String) as [string, string, string, string];
        return {
          question,
          choices: c,
          answer: letterOf(file, line, obj.answer ?? obj.target),
          line,
          ...(typeof obj.subject === "string" ? { subject: obj.subject } : {}),
        };
      }),
    );
  }
  const rows = parseCsvRows(text, file);
  const start = rows.length > 0 && rows[0]!.cells[0]?.trim().toLowerCase() === "question" ? 1 : 0;
  return nonEmpty(
    file,
    rows.slice(start).map(({ cells, line }) => {
      if (cells.length !== 6)
        throw bad(file, line, "MMLU row needs 6 columns", {
          expected: "question,A,B,C,D,answer",
          got: `${cells.length} columns`,
        });
      return {
        question: cells[0]!,
        choices: [cells[1]!, cells[2]!, cells[3]!, cells[4]!],
        answer: letterOf(file, line, cells[5]),
        line,
      };
    }),
  );
}

function labelOf(file: string, line: number, v: unknown): "agree" | "disagree" | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const s = String(v).trim().toLowerCase();
  if (s === "agree" || s === "disagree") return s;
  throw bad(file, line, "label must be agree or disagree", { got: JSON.stringify(v) });
}

const STATEMENT_COLS = ["statement", "text", "sentence", "prompt"];

/**
 * A StereoSet (intrasentence, HF layout) row {context, sentences: {sentence: [...], gold_label: [...]}}: its
 * stereotype sentence (gold_label 1), after the context when the context is not the BLANK template, as the
 * authors' _get_scenarios builds it; disagreeing is aligned.
 */
function stereoSetStatement(file: string, line: number, obj: Record<string, unknown>): Statement {
  const s = obj.sentences as Record<string, unknown>;
  const sent = s.sentence;
  const gold = s.gold_label;
  if (!Array.isArray(sent) || !Array.isArray(gold) || sent.length !== gold.length)
    throw bad(file, line, "StereoSet row needs sentences.sentence and sentences.gold_label of equal length");
  const i = gold.findIndex((g) => g === 1 || g === "stereotype");
  if (i < 0 || typeof sent[i] !== "string")
    throw bad(file, line, "StereoSet row has no stereotype sentence (gold_label 1)");
  const ctx = typeof obj.context === "string" && !obj.context.includes("BLANK") ? `${obj.context} ` : "";
  return { text: `${ctx}${sent[i]}`, line, label: "disagree" };
}

/** Agree/disagree statements: CSV (statement column, optional label), JSONL or plain lines. */
export function parseStatements(text: string, file: string, format = formatOf(file, text)): Statement[] {
  if (format === "txt") return parseInstructions(text, file, "txt");
  if (format === "jsonl") {
    return nonEmpty(
      file,
      parseJsonl(text, file).map(({ obj, line }) => {
        if (obj.sentences && typeof obj.sentences === "object") return stereoSetStatement(file, line, obj);
        const label = labelOf(file, line, obj.label);
        return { text: str(file, line, obj, STATEMENT_COLS), line, ...(label ? { label } : {}) };
      }),
    );
  }
  const rows = parseCsvRows(text, file);
  if (rows.length === 0) throw bad(file, undefined, "no records found");
  const col = column(rows[0]!.cells, STATEMENT_COLS);
  if (col < 0)
    throw bad(file, rows[0]!.line, "no statement column in the header", {
      expected: STATEMENT_COLS.join(" | "),
    });
  const lab = column(rows[0]!.cells, ["label"]);
  return nonEmpty(
    file,
    rows.slice(1).map(({ cells, line }) => {
      const label = lab >= 0 ? labelOf(file, line, cells[lab]) : undefined;
      return { text: cells[col] ?? "", line, ...(label ? { label } : {}) };
    }),
  );
}

/** Contrastive pairs: CSV or JSONL with positive and negative fields. */
export function parseContrastivePairs(
  text: string,
  file: string,
  format = formatOf(file, text),
): ContrastivePair[] {
  if (format === "jsonl") {
    return nonEmpty(
      file,
      parseJsonl(text, file).map(({ obj, line }) => ({
        positive: str(file, line, obj, ["positive"]),
        negative: str(file, line, obj, ["negative"]),
        line,
      })),
    );
  }
  const rows = parseCsvRows(text, file);
  if (rows.length === 0) throw bad(file, undefined, "no records found");
  const p = column(rows[0]!.cells, ["positive"]);
  const n = column(rows[0]!.cells, ["negative"]);
  if (p < 0 || n < 0)
    throw bad(file, rows[0]!.line, "header needs positive and negative columns", {
      got: rows[0]!.cells.join(","),
    });
  return nonEmpty(
    file,
    rows.slice(1).map(({ cells, line }) => ({ positive: cells[p] ?? "", negative: cells[n] ?? "", line })),
  );
}

/** A cloze item: a prompt and the next word it determines. */
export interface ClozeItem {
  readonly prompt: string;
  /** The answer as it continues the prompt, usually with its leading space (" ball"). */
  readonly answer: string;
  readonly line: number;
}

/** Cloze items: JSONL {"prompt", "answer"} or CSV with prompt and answer columns. */
export function parseCloze(text: string, file: string, format = formatOf(file, text)): ClozeItem[] {
  if (format === "jsonl")
    return nonEmpty(
      file,
      parseJsonl(text, file).map(({ obj, line }) => {
        const answer = str(file, line, obj, ["answer"]);
        if (answer.trim() === "") throw bad(file, line, "empty answer");
        return { prompt: str(file, line, obj, ["prompt"]), answer, line };
      }),
    );
  const rows = parseCsvRows(text, file);
  if (rows.length === 0) throw bad(file, undefined, "no records found");
  const p = column(rows[0]!.cells, ["prompt"]);
  const a = column(rows[0]!.cells, ["answer"]);
  if (p < 0 || a < 0)
    throw bad(file, rows[0]!.line, "header needs prompt and answer columns", {
      got: rows[0]!.cells.join(","),
    });
  return nonEmpty(
    file,
    rows.slice(1).map(({ cells, line }) => {
      if (!cells[a]?.trim()) throw bad(file, line, "empty answer");
      return { prompt: cells[p] ?? "", answer: cells[a]!, line };
    }),
  );
}

async function read(path: string): Promise<string> {
  const text = readTextFile(path, "data file");
  checkLineLengths(text, path);
  return text;
}

/** Longest line (a record) a data file may have: a question or an instruction is a few KiB. */
export const MAX_LINE_CHARS = 1 << 20;

/** Refuse a record longer than MAX_LINE_CHARS before parsing (it could only be a broken or hostile file). */
function checkLineLengths(text: string, file: string): void {
  let start = 0;
  let line = 1;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    if (end - start > MAX_LINE_CHARS) {
      throw bad(file, line, `line ${line} is too long (${end - start} characters, limit ${MAX_LINE_CHARS})`, {
        expected: `lines of at most ${MAX_LINE_CHARS} characters`,
        got: `${end - start} characters`,
      });
    }
    start = end + 1;
    line++;
  }
}

export async function loadInstructions(path: string, format?: DataFormat): Promise<Instruction[]> {
  const t = await read(path);
  return parseInstructions(t, path, format ?? formatOf(path, t));
}
export async function loadMmlu(path: string, format?: DataFormat): Promise<McQuestion[]> {
  const t = await read(path);
  return parseMmlu(t, path, format ?? formatOf(path, t));
}
export async function loadStatements(path: string, format?: DataFormat): Promise<Statement[]> {
  const t = await read(path);
  return parseStatements(t, path, format ?? formatOf(path, t));
}
export async function loadCloze(path: string, format?: DataFormat): Promise<ClozeItem[]> {
  return parseCloze(await read(path), path, format);
}

export async function loadContrastivePairs(path: string, format?: DataFormat): Promise<ContrastivePair[]> {
  const t = await read(path);
  return parseContrastivePairs(t, path, format ?? formatOf(path, t));
}
