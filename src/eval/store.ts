/**
 * The sweep's durable result store: a run folder with
 *   run.json         the config and its hash (written once, when the folder is new)
 *   results.jsonl    one record per line, appended and written through to the OS as each is produced
 * Opening a folder that holds another config is an error; opening it with the same config resumes: the records
 * already there are loaded, their keys are skipped by the runner, and new ones are appended. A line torn by a
 * crash (the last one, without its newline) is dropped on open; any other bad line is an error.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";

/** One scored (task, variant, item, r_e) cell. Fields beyond the key depend on the task kind. */
export interface SweepRecord {
  task: string;
  /** Vector x layer set, e.g. "refusal@8..15". */
  variant: string;
  item: number;
  r: number;
  kind: "behavior-generate" | "behavior-logprob" | "mcq" | "cloze";
  /** Behaviour score +1 / -1 / 0 (unclear); for mcq 1 when the predicted letter is correct, else 0. */
  score: number;
  /** behavior-generate: the answer and why it was classified so. */
  text?: string;
  reason?: string;
  /** behavior-logprob: logP(aligned) - logP(misaligned) and 2 sigmoid(margin) - 1. */
  margin?: number;
  soft?: number;
  /** behavior-logprob: mean next-token logit of the good tokens minus the bad ones (the paper's A2). */
  goodBad?: number;
  /** mcq */
  pFull?: number;
  pRelative?: number;
  predicted?: string;
  /** A1: ||steered - baseline logits|| at the answer position (mcq). */
  dNorm?: number;
  /** A3: <delta logits, e_i - e_correct> over the top-10 baseline tokens (mcq). */
  a3?: number[];
}

export function recordKey(task: string, variant: string, item: number, r: number): string {
  return `${task}\u0000${variant}\u0000${item}\u0000${r}`;
}

/** JSON with sorted object keys, so equal configs hash equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

export function configHash(config: unknown): string {
  return createHash("sha256").update(canonicalJson(config)).digest("hex");
}

export interface RunInfo {
  steerlab: "sweep-run";
  version: 1;
  hash: string;
  created: string;
  config: unknown;
}

export const RUN_FILE = "run.json";
export const RESULTS_FILE = "results.jsonl";

export class ResultStore {
  readonly dir: string;
  readonly info: RunInfo;
  private readonly byKey = new Map<string, SweepRecord>();
  private fd: number | null;

  private constructor(dir: string, info: RunInfo, records: SweepRecord[], fd: number) {
    this.dir = dir;
    this.info = info;
    for (const r of records) this.byKey.set(recordKey(r.task, r.variant, r.item, r.r), r);
    this.fd = fd;
  }

  /** Create the run folder for `config`, or reopen it (resume) when it holds the same config. */
  static open(dir: string, config: unknown): ResultStore {
    const hash = configHash(config);
    mkdirSync(dir, { recursive: true });
    const runPath = join(dir, RUN_FILE);
    let info: RunInfo;
    if (existsSync(runPath)) {
      info = ResultStore.readInfo(dir);
      if (info.hash !== hash) {
        throw new SteerlabError("mismatch", "this run folder holds a sweep with another config", {
          file: runPath,
          expected: info.hash.slice(0, 12),
          got: hash.slice(0, 12),
          hint: "use a new folder for a new config, or rerun with the config recorded in run.json",
        });
      }
    } else {
      info = { steerlab: "sweep-run", version: 1, hash, created: new Date().toISOString(), config };
      writeFileSync(runPath, `${JSON.stringify(info, null, 2)}\n`);
    }
    const resPath = join(dir, RESULTS_FILE);
    const { records, validBytes } = existsSync(resPath)
      ? parseResults(readFileSync(resPath), resPath)
      : { records: [], validBytes: 0 };
    const fd = openSync(resPath, existsSync(resPath) ? "r+" : "w+");
    ftruncateSync(fd, validBytes); // drop a torn last line
    closeSync(fd);
    return new ResultStore(dir, info, records, openSync(resPath, "a"));
  }

  /** Read run.json of a folder (for reports). */
  static readInfo(dir: string): RunInfo {
    const runPath = join(dir, RUN_FILE);
    let info: RunInfo;
    try {
      info = JSON.parse(readFileSync(runPath, "utf8")) as RunInfo;
    } catch (e) {
      throw new SteerlabError("bad_file", `cannot read the run description: ${(e as Error).message}`, {
        file: runPath,
      });
    }
    if (info.steerlab !== "sweep-run" || typeof info.hash !== "string")
      throw new SteerlabError("bad_file", "not a steerlab sweep run", {
        file: runPath,
        field: "steerlab",
        expected: "sweep-run",
      });
    return info;
  }

  /** All records of a run folder, without opening it for writing. */
  static readRecords(dir: string): SweepRecord[] {
    const resPath = join(dir, RESULTS_FILE);
    return existsSync(resPath) ? parseResults(readFileSync(resPath), resPath).records : [];
  }

  has(task: string, variant: string, item: number, r: number): boolean {
    return this.byKey.has(recordKey(task, variant, item, r));
  }

  get size(): number {
    return this.byKey.size;
  }

  records(): SweepRecord[] {
    return [...this.byKey.values()];
  }

  /** Append records; each is in the file (OS buffers) when this returns. A key already stored is an error. */
  append(recs: readonly SweepRecord[]): void {
    if (this.fd === null) throw new SteerlabError("bad_input", "result store is closed");
    for (const r of recs) {
      const k = recordKey(r.task, r.variant, r.item, r.r);
      if (this.byKey.has(k))
        throw new SteerlabError("bad_input", "record already stored (the runner repeated work)", {
          got: k.replaceAll("\u0000", " "),
        });
      this.byKey.set(k, r);
    }
    if (recs.length) writeSync(this.fd, recs.map((r) => `${JSON.stringify(r)}\n`).join(""));
  }

  /** Flush to disk and close. */
  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}

function parseResults(buf: Buffer, file: string): { records: SweepRecord[]; validBytes: number } {
  const text = buf.toString("utf8");
  const records: SweepRecord[] = [];
  let pos = 0;
  let line = 0;
  while (pos < text.length) {
    line++;
    const nl = text.indexOf("\n", pos);
    if (nl < 0) break; // torn last line: dropped
    const raw = text.slice(pos, nl);
    if (raw.trim() !== "") {
      let r: SweepRecord;
      try {
        r = JSON.parse(raw) as SweepRecord;
      } catch (e) {
        throw new SteerlabError("bad_file", `corrupt result line: ${(e as Error).message}`, {
          file,
          field: `line ${line}`,
        });
      }
      if (
        typeof r.task !== "string" ||
        typeof r.variant !== "string" ||
        typeof r.item !== "number" ||
        typeof r.r !== "number"
      )
        throw new SteerlabError("bad_file", "result line lacks its key", {
          file,
          field: `line ${line}`,
          expected: "task, variant, item, r",
        });
      records.push(r);
    }
    pos = nl + 1;
  }
  return { records, validBytes: Buffer.byteLength(text.slice(0, pos), "utf8") };
}
