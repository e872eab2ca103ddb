/**
 * Training data for extraction, read from JSONL:
 *   contrastive pairs  {"positive": "...", "negative": "...", "prompt"?: "...", "template"?: "raw" | "chat" | "...{text}..."}
 *   labelled examples  {"text": "...", "label": 1 | 0 | true | false | "positive" | "negative", "prompt"?, "template"?}
 * Every malformed line is reported with its file and line number, all of them in one error.
 */
import { createHash } from "node:crypto";
import { SteerlabError } from "../errors.js";
import { readTextFile } from "../io/files.js";

/**
 * How a member is turned into model input: "raw" = prompt + text (default); "chat" = the model's chat template
 * with the prompt as the user turn and the text as the start of the assistant turn; anything else is a format
 * string with a "{text}" and optionally a "{prompt}" placeholder.
 */
export type Template = "raw" | "chat" | string;

export interface ContrastPair {
  positive: string;
  negative: string;
  prompt?: string;
  template?: Template;
}

export interface LabelledExample {
  text: string;
  /** true = the behaviour the vector should point towards. */
  positive: boolean;
  prompt?: string;
  template?: Template;
}

export type Dataset =
  | { kind: "pairs"; file: string; items: ContrastPair[]; hash: string }
  | { kind: "labelled"; file: string; items: LabelledExample[]; hash: string };

const PAIR_KEYS = new Set(["positive", "negative", "prompt", "template"]);
const LABEL_KEYS = new Set(["text", "label", "prompt", "template"]);

function parseLabel(v: unknown): boolean | null {
  if (v === 1 || v === true || v === "positive" || v === "1") return true;
  if (v === 0 || v === -1 || v === false || v === "negative" || v === "0") return false;
  return null;
}

function checkOptional(o: Record<string, unknown>, problems: string[], where: string): void {
  if (o.prompt !== undefined && typeof o.prompt !== "string")
    problems.push(`${where}: "prompt" must be a string`);
  if (o.template !== undefined) {
    const t = o.template;
    if (typeof t !== "string") problems.push(`${where}: "template" must be a string`);
    else if (t !== "raw" && t !== "chat" && !t.includes("{text}"))
      problems.push(`${where}: "template" must be "raw", "chat" or a format string containing {text}`);
  }
}

/** A RepE row's two sentences as a pair: the one labelled true (1) is `positive`; else why not. */
function fromLabelLists(
  sentence: unknown[],
  label: unknown[],
): { positive: unknown; negative: unknown } | string {
  const truthy = (v: unknown) => v === true || v === 1;
  const falsy = (v: unknown) => v === false || v === 0;
  if (sentence.length !== 2 || label.length !== 2)
    return `"sentence" and "label" lists need 2 entries each, got ${sentence.length} and ${label.length}`;
  const i = label.findIndex(truthy);
  if (i < 0 || !falsy(label[1 - i]))
    return `"label" must hold one true and one false, got ${JSON.stringify(label)}`;
  return { positive: sentence[i], negative: sentence[1 - i] };
}

/**
 * Parse JSONL text (one object per non-blank line). `file` names the source in errors. Besides the two
 * layouts above, RepE's harmful_harmless_instructions rows {"sentence": [a, b], "label": [true, false]} are
 * read as pairs (the sentence labelled true is `positive`).
 */
export function parseDataset(text: string, file: string): Dataset {
  const problems: string[] = [];
  const pairs: ContrastPair[] = [];
  const labelled: LabelledExample[] = [];
  let kind: "pairs" | "labelled" | null = null;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    const where = `${file}:${i + 1}`;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      problems.push(`${where}: not valid JSON (${(e as Error).message})`);
      return;
    }
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      problems.push(`${where}: expected a JSON object`);
      return;
    }
    let r = o as Record<string, unknown>;
    if (Array.isArray(r.sentence) && Array.isArray(r.label)) {
      // RepE's harmful_harmless_instructions layout: {"sentence": [a, b], "label": [true, false]}
      const pair = fromLabelLists(r.sentence, r.label);
      if (typeof pair === "string") {
        problems.push(`${where}: ${pair}`);
        return;
      }
      const { sentence: _s, label: _l, ...rest } = r;
      r = { ...rest, ...pair };
    }
    const isPair = "positive" in r || "negative" in r;
    const isLabel = "text" in r || "label" in r;
    if (isPair === isLabel) {
      problems.push(
        `${where}: expected {"positive","negative"} (a pair) or {"text","label"} (a labelled example), got keys ${Object.keys(r).join(", ") || "(none)"}`,
      );
      return;
    }
    const lineKind = isPair ? "pairs" : "labelled";
    if (kind !== null && kind !== lineKind) {
      problems.push(`${where}: a ${lineKind === "pairs" ? "pair" : "labelled"} line in a ${kind} file`);
      return;
    }
    kind = lineKind;
    const known = isPair ? PAIR_KEYS : LABEL_KEYS;
    for (const k of Object.keys(r)) if (!known.has(k)) problems.push(`${where}: unknown key "${k}"`);
    checkOptional(r, problems, where);
    if (isPair) {
      if (typeof r.positive !== "string" || typeof r.negative !== "string") {
        problems.push(`${where}: unpaired data, "positive" and "negative" must both be strings`);
        return;
      }
      if (r.positive === "" || r.negative === "") {
        problems.push(`${where}: empty member`);
        return;
      }
      if (r.positive === r.negative) {
        problems.push(`${where}: identical members carry no contrast`);
        return;
      }
      pairs.push({
        positive: r.positive,
        negative: r.negative,
        ...(r.prompt !== undefined ? { prompt: r.prompt as string } : {}),
        ...(r.template !== undefined ? { template: r.template as string } : {}),
      });
    } else {
      const label = parseLabel(r.label);
      if (typeof r.text !== "string" || r.text === "") {
        problems.push(`${where}: "text" must be a non-empty string`);
        return;
      }
      if (label === null) {
        problems.push(
          `${where}: "label" must be 1/0, true/false or "positive"/"negative", got ${JSON.stringify(r.label)}`,
        );
        return;
      }
      labelled.push({
        text: r.text,
        positive: label,
        ...(r.prompt !== undefined ? { prompt: r.prompt as string } : {}),
        ...(r.template !== undefined ? { template: r.template as string } : {}),
      });
    }
  });
  if (problems.length) {
    throw new SteerlabError("bad_file", `${problems.length} bad line(s) in the dataset`, {
      file,
      problems: problems
        .slice(0, 50)
        .concat(problems.length > 50 ? [`... and ${problems.length - 50} more`] : []),
    });
  }
  if (kind === null) {
    throw new SteerlabError("bad_file", "the dataset is empty", {
      file,
      expected: "at least one JSONL line",
    });
  }
  if (kind === "labelled") {
    const nPos = labelled.filter((e) => e.positive).length;
    if (nPos === 0 || nPos === labelled.length) {
      throw new SteerlabError("bad_file", "a labelled set needs examples of both labels", {
        file,
        field: "label",
        got: `${nPos} positive, ${labelled.length - nPos} negative`,
      });
    }
    return { kind, file, items: labelled, hash: datasetHash(labelled) };
  }
  return { kind: "pairs", file, items: pairs, hash: datasetHash(pairs) };
}

export function loadDataset(path: string): Dataset {
  return parseDataset(readTextFile(path, "dataset"), path);
}

export function loadPairs(path: string): ContrastPair[] {
  const d = loadDataset(path);
  if (d.kind !== "pairs") {
    throw new SteerlabError("bad_file", "expected contrastive pairs", {
      file: path,
      expected: '{"positive","negative"} lines',
      got: '{"text","label"} lines',
      hint: "use a labelled-set method (mean-diff, logistic) or write pairs",
    });
  }
  return d.items;
}

export function loadLabelled(path: string): LabelledExample[] {
  const d = loadDataset(path);
  if (d.kind !== "labelled") {
    throw new SteerlabError("bad_file", "expected a labelled set", {
      file: path,
      expected: '{"text","label"} lines',
      got: '{"positive","negative"} lines',
    });
  }
  return d.items;
}

/** sha256 of the canonical JSON of the items (order matters): stored in vector files. */
export function datasetHash(items: readonly (ContrastPair | LabelledExample)[]): string {
  const h = createHash("sha256");
  for (const it of items) h.update(`${JSON.stringify(it, Object.keys(it).sort())}\n`);
  return `sha256:${h.digest("hex")}`;
}

/**
 * The model input for one member. "chat" needs the caller's renderer (the tokenizer's chat template:
 * prompt as the user turn, text as the beginning of the assistant's reply).
 */
export function renderMember(
  text: string,
  prompt: string | undefined,
  template: Template | undefined,
  renderChat?: (prompt: string, answer: string) => string,
): string {
  const t = template ?? "raw";
  const p = prompt ?? "";
  if (t === "raw") return p + text;
  if (t === "chat") {
    if (!renderChat) {
      throw new SteerlabError("bad_input", 'template "chat" needs the model\'s chat template', {
        hint: "pass a renderer built from the tokenizer's applyChatTemplate",
      });
    }
    return renderChat(p, text);
  }
  return t.replaceAll("{prompt}", p).replaceAll("{text}", text);
}
