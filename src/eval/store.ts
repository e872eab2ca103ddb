/**
 * The sweep's durable result store: a run folder with
 *   lock             who is writing this folder now (run-lock.ts); a second writer is refused
 *   run.json         the run identity (config, model and file fingerprints) and its hash, written atomically once
 *   results.jsonl    one record per line, appended and written through to the OS as each is produced
 *   results.rejected lines that were found corrupt, moved out of results.jsonl verbatim (only if any ever were)
 * Opening a folder that holds another identity is an error naming what changed; opening it with the same one
 * resumes: the records already there are loaded, their keys are skipped by the runner, new ones are appended.
 *
 * Damage is survived, reported and repaired, never fatal: a last line torn by a crash is dropped; a corrupt line
 * anywhere is skipped (its cell is missing, so the runner recomputes it) and, when the folder is opened for
 * writing, moved to results.rejected; a record whose key an earlier line holds is a duplicate and counts once.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { fsWriteError, removeStaleTemps, writeAllSync, writeFileAtomic } from "../io/write-atomic.js";
import { type LockHolder, lockRunDir, type RunLock } from "./run-lock.js";

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

/**
 * The record key: the fields that name one cell of a sweep grid. A run folder holds at most one record per key;
 * every reader (resume, report, aggregation, merge) counts the first line with a key and ignores later ones.
 */
export const RECORD_KEY_FIELDS = ["task", "variant", "item", "r"] as const;
export type RecordKeyOf = Pick<SweepRecord, (typeof RECORD_KEY_FIELDS)[number]>;

/** The key of a cell: task, variant, item index and r_e (as JS prints the number) joined by NUL. */
export function recordKey(task: string, variant: string, item: number, r: number): string {
  return `${task}\u0000${variant}\u0000${item}\u0000${r}`;
}

/** recordKey of a record. */
export function keyOf(r: RecordKeyOf): string {
  return recordKey(r.task, r.variant, r.item, r.r);
}

/** The first record of each key, in order (duplicates, e.g. from two runs that shared a folder, count once). */
export function uniqueRecords<T extends RecordKeyOf>(recs: readonly T[]): T[] {
  const seen = new Set<string>();
  return recs.filter((r) => {
    const k = keyOf(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
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

/** The top-level fields in which two run identities differ, sorted. */
export function identityChanges(before: unknown, now: unknown): string[] {
  const a = (before && typeof before === "object" ? before : {}) as Record<string, unknown>;
  const b = (now && typeof now === "object" ? now : {}) as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k]))
    .sort();
}

export interface RunInfo {
  steerlab: "sweep-run";
  version: 1;
  hash: string;
  created: string;
  /** The run identity (sweep-config.ts runIdentity): what must not change for a resume to be valid. */
  config: unknown;
}

export const RUN_FILE = "run.json";
export const RESULTS_FILE = "results.jsonl";
export const REJECTED_FILE = "results.rejected";

/** What reading a results file found wrong with it; line numbers are 1-based. */
export interface StoreDamage {
  /** Lines that are not a valid record: skipped (their cells are recomputed by the next resume). */
  corruptLines: number[];
  /** Lines whose record key an earlier line already holds: skipped (the first one counts). */
  duplicateLines: number[];
  /** The last line had no newline (a write cut short by a crash or a full disk): dropped. */
  tornTail: boolean;
}

/** What opening a folder for writing found and repaired. */
export interface StoreRecovery extends StoreDamage {
  /** The dead process whose lock was taken over, or null. */
  staleLock: LockHolder | null;
  /** run.json was empty (left by an older steerlab that crashed writing it) and was written anew. */
  emptyRunFile: boolean;
  /** Where the corrupt lines were moved to, or null when there were none. */
  rejectedFile: string | null;
}

export function hasDamage(d: StoreDamage): boolean {
  return d.corruptLines.length > 0 || d.duplicateLines.length > 0 || d.tornTail;
}

export interface OpenOptions {
  /** A lock on `dir` the caller already holds (and releases); by default open takes one and close releases it. */
  lock?: RunLock;
}

const RESUME_HINT = "everything stored before this is kept: rerun the same command to resume";

export class ResultStore {
  readonly dir: string;
  readonly info: RunInfo;
  readonly recovery: StoreRecovery;
  private readonly byKey = new Map<string, SweepRecord>();
  private fd: number | null;
  private failed = false;
  private readonly ownLock: RunLock | null;

  private constructor(
    dir: string,
    info: RunInfo,
    records: SweepRecord[],
    fd: number,
    recovery: StoreRecovery,
    ownLock: RunLock | null,
  ) {
    this.dir = dir;
    this.info = info;
    this.recovery = recovery;
    for (const r of records) this.byKey.set(keyOf(r), r);
    this.fd = fd;
    this.ownLock = ownLock;
  }

  /**
   * Create the run folder for `identity`, or reopen it (resume) when it holds the same identity. Takes the
   * folder's lock ("locked" error when another live process holds it), repairs what a crash left (see the top
   * of this file) and reports it in `recovery`.
   */
  static open(dir: string, identity: unknown, opts: OpenOptions = {}): ResultStore {
    const ownLock = opts.lock ? null : lockRunDir(dir);
    const lock = opts.lock ?? ownLock!;
    try {
      return ResultStore.openLocked(dir, identity, lock, ownLock);
    } catch (e) {
      ownLock?.release();
      throw e;
    }
  }

  private static openLocked(
    dir: string,
    identity: unknown,
    lock: RunLock,
    ownLock: RunLock | null,
  ): ResultStore {
    const hash = configHash(identity);
    // Temp files of an atomic write that a killed process never renamed.
    removeStaleTemps(dir, RUN_FILE);
    removeStaleTemps(dir, RESULTS_FILE);
    const runPath = join(dir, RUN_FILE);
    const resPath = join(dir, RESULTS_FILE);
    const hasResults = existsSync(resPath) && statSync(resPath).size > 0;
    const parsed = parseResults(readStoreFile(resPath));
    // An empty run.json is what a non-atomic write left when the disk was full or the process died: with no
    // results beside it nothing is lost by writing it again.
    const emptyRunFile = !hasResults && isEmptyFile(runPath);
    let info: RunInfo;
    if (existsSync(runPath) && !emptyRunFile) {
      info = ResultStore.readInfo(dir);
      if (info.hash !== hash) throw identityError(dir, info.config, identity);
    } else {
      info = { steerlab: "sweep-run", version: 1, hash, created: new Date().toISOString(), config: identity };
      writeFileAtomic(runPath, `${JSON.stringify(info, null, 2)}\n`, {
        hint: "the run folder holds no run.json yet, so the next run starts it cleanly",
      });
    }
    const { damage } = parsed;
    let rejectedFile: string | null = null;
    if (damage.corruptLines.length || damage.duplicateLines.length) {
      // Rewrite the store without the bad lines (atomically: a crash here leaves the old file), keeping the
      // corrupt ones verbatim in results.rejected so nothing is thrown away.
      if (damage.corruptLines.length) {
        rejectedFile = join(dir, REJECTED_FILE);
        const old = existsSync(rejectedFile) ? readFileSync(rejectedFile) : Buffer.alloc(0);
        const bad = damage.corruptLines.map((n) => `${parsed.lines[n - 1]}\n`).join("");
        writeFileAtomic(rejectedFile, Buffer.concat([old, Buffer.from(bad, "utf8")]), { hint: RESUME_HINT });
      }
      const keep = parsed.recordLines.map((n) => `${parsed.lines[n - 1]}\n`).join("");
      writeFileAtomic(resPath, keep, { hint: RESUME_HINT });
    } else if (existsSync(resPath)) {
      const fd = openFile(resPath, "r+");
      try {
        ftruncateSync(fd, parsed.validBytes); // drop a torn last line
      } finally {
        closeSync(fd);
      }
    }
    const fd = openFile(resPath, "a");
    const recovery: StoreRecovery = { ...damage, staleLock: lock.tookOver, emptyRunFile, rejectedFile };
    return new ResultStore(dir, info, parsed.records, fd, recovery, ownLock);
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
        hint: "steerlab writes run.json atomically, so something else damaged it: restore it from a backup to keep the results beside it, or start fresh in another run folder",
      });
    }
    if (info?.steerlab !== "sweep-run" || typeof info.hash !== "string")
      throw new SteerlabError("bad_file", "not a steerlab sweep run", {
        file: runPath,
        field: "steerlab",
        expected: "sweep-run",
      });
    return info;
  }

  /** The records of a run folder (one per key) and what was wrong with its file, without opening it for writing. */
  static read(dir: string): { records: SweepRecord[]; damage: StoreDamage } {
    const resPath = join(dir, RESULTS_FILE);
    const { records, damage } = parseResults(readStoreFile(resPath));
    return { records, damage };
  }

  /** All records of a run folder (one per key), without opening it for writing. */
  static readRecords(dir: string): SweepRecord[] {
    return ResultStore.read(dir).records;
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

  /**
   * Append records; each is in the file (OS buffers) when this returns. A key already stored is an error. A
   * failed write (disk full, ...) is an "io" error naming the file; the store then refuses further appends, and
   * what the failed write left (a torn last line) is dropped by the next open.
   */
  append(recs: readonly SweepRecord[]): void {
    if (this.fd === null) throw new SteerlabError("bad_input", "result store is closed");
    if (this.failed)
      throw new SteerlabError("bad_input", "result store failed to write; reopen it to resume");
    const fresh = new Set<string>();
    for (const r of recs) {
      const k = keyOf(r);
      if (this.byKey.has(k) || fresh.has(k))
        throw new SteerlabError("bad_input", "record already stored (the runner repeated work)", {
          got: k.replaceAll("\u0000", " "),
        });
      fresh.add(k);
    }
    if (!recs.length) return;
    try {
      writeAllSync(this.fd, recs.map((r) => `${JSON.stringify(r)}\n`).join(""));
    } catch (e) {
      this.failed = true;
      throw fsWriteError(e, join(this.dir, RESULTS_FILE), RESUME_HINT);
    }
    for (const r of recs) this.byKey.set(keyOf(r), r);
  }

  /** Flush to disk, close, and release the folder's lock if open took it. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    let err: unknown = null;
    try {
      if (!this.failed) fsyncSync(fd);
    } catch (e) {
      err = fsWriteError(e, join(this.dir, RESULTS_FILE), RESUME_HINT);
    } finally {
      closeSync(fd);
      this.ownLock?.release();
    }
    if (err) throw err;
  }
}

function isEmptyFile(path: string): boolean {
  try {
    return statSync(path).isFile() && readFileSync(path, "utf8").trim() === "";
  } catch {
    return false;
  }
}

/** A results file's bytes (empty when absent); a directory or an unreadable file is a clear error. */
function readStoreFile(path: string): Buffer {
  if (!existsSync(path)) return Buffer.alloc(0);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new SteerlabError("bad_file", `cannot read the sweep results: ${(e as Error).message}`, {
      file: path,
      hint: "a run folder's results.jsonl must be a readable file",
    });
  }
}

function openFile(path: string, flags: string): number {
  try {
    return openSync(path, flags);
  } catch (e) {
    throw fsWriteError(e, path, RESUME_HINT);
  }
}

/** The refusal to resume a folder made for another run identity, naming what changed and how to start fresh. */
function identityError(dir: string, before: unknown, now: unknown): SteerlabError {
  const changed = identityChanges(before, now);
  const b = (before ?? {}) as Record<string, unknown>;
  const n = (now ?? {}) as Record<string, unknown>;
  const fresh = `to start fresh, use another run folder or delete ${dir}`;
  if (changed.includes("modelFingerprint") && !changed.includes("model")) {
    const was = typeof b.modelFingerprint === "string" ? b.modelFingerprint.slice(0, 16) : null;
    return new SteerlabError(
      "mismatch",
      was
        ? `the model at ${String(n.model)} is not the one this run started with; resuming would mix two models in one store`
        : "this run folder was started by an older steerlab that did not record the model's fingerprint",
      {
        file: join(dir, RUN_FILE),
        field: "modelFingerprint",
        ...(was ? { expected: `${was}…` } : {}),
        got: `${String(n.modelFingerprint).slice(0, 16)}…`,
        hint: was ? `${fresh}; to resume, put the original model back at ${String(n.model)}` : fresh,
      },
    );
  }
  return new SteerlabError(
    "mismatch",
    `this run folder holds a sweep with another config (${changed.join(", ")} differ)`,
    {
      file: join(dir, RUN_FILE),
      field: changed.join(", "),
      hint: `${fresh}, or rerun with the config recorded in run.json`,
    },
  );
}

export interface ParsedResults {
  /** The valid records, first per key, in file order. */
  records: SweepRecord[];
  /** Every complete line (without its newline); lines[n - 1] is line n. */
  lines: string[];
  /** Line numbers of `records`. */
  recordLines: number[];
  /** Bytes up to the end of the last complete line. */
  validBytes: number;
  damage: StoreDamage;
}

/** A results file's valid records (first per key), its lines, and what was wrong with it. */
export function parseResults(buf: Buffer): ParsedResults {
  const text = buf.toString("utf8");
  const records: SweepRecord[] = [];
  const lines: string[] = [];
  const recordLines: number[] = [];
  const damage: StoreDamage = { corruptLines: [], duplicateLines: [], tornTail: false };
  const seen = new Set<string>();
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) {
      damage.tornTail = true;
      break;
    }
    const raw = text.slice(pos, nl);
    lines.push(raw);
    pos = nl + 1;
    if (raw.trim() === "") continue;
    const r = parseRecord(raw);
    if (!r) damage.corruptLines.push(lines.length);
    else if (seen.has(keyOf(r))) damage.duplicateLines.push(lines.length);
    else {
      seen.add(keyOf(r));
      records.push(r);
      recordLines.push(lines.length);
    }
  }
  return { records, lines, recordLines, validBytes: Buffer.byteLength(text.slice(0, pos), "utf8"), damage };
}

const KINDS: ReadonlySet<string> = new Set(["behavior-generate", "behavior-logprob", "mcq"]);

/** A line as a record, or null when it is not one (bad JSON, or its key or score missing or mistyped). */
function parseRecord(raw: string): SweepRecord | null {
  let r: unknown;
  try {
    r = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!r || typeof r !== "object" || Array.isArray(r)) return null;
  const o = r as Record<string, unknown>;
  const ok =
    typeof o.task === "string" &&
    typeof o.variant === "string" &&
    Number.isInteger(o.item) &&
    typeof o.r === "number" &&
    Number.isFinite(o.r) &&
    typeof o.kind === "string" &&
    KINDS.has(o.kind) &&
    typeof o.score === "number";
  return ok ? (o as unknown as SweepRecord) : null;
}
