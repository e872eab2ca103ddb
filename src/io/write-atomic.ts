/**
 * Every file steerlab writes goes through here. The bytes go to a temp file in the target's folder, are fsynced,
 * and the temp file is renamed over the target (then the folder is fsynced), so a reader or a crash sees the old
 * file or the whole new one, never a truncated one. `writeFileAtomicWith` hands out a write function so that
 * model and vector writers stream one tensor at a time (npm's write-file-atomic takes the whole file as one
 * buffer, which a multi-GB GGUF is not). A refusal of the file system (disk full, quota, permission, read-only,
 * a directory where the file belongs) becomes a SteerlabError naming the file; the temp file is removed and an
 * existing target is left as it was.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { isSteerlabError, SteerlabError } from "../errors.js";

export type WriteChunk = (bytes: Uint8Array | string) => void;

/** Prefix of temp files: `.<name>.tmp-<pid>-<n>` beside the target. */
const TMP_MARK = ".tmp-";
let counter = 0;

/** Write `data` to `path` atomically (temp file, fsync, rename). */
export function writeFileAtomic(path: string, data: Uint8Array | string, opts: WriteOptions = {}): void {
  writeFileAtomicWith(path, (write) => write(data), opts);
}

export interface WriteOptions {
  /** Added to the error's hint when the write fails (e.g. how to resume). */
  hint?: string;
}

/** Write `path` atomically from `fill`, which calls `write` as often as it likes. */
export function writeFileAtomicWith(
  path: string,
  fill: (write: WriteChunk) => void,
  opts: WriteOptions = {},
): void {
  // Refuse a directory before writing (possibly gigabytes of) data that rename would then refuse.
  if (isDirectory(path)) throw fsWriteError(codeError("EISDIR"), path, opts.hint);
  const tmp = join(dirname(path), `.${basename(path)}${TMP_MARK}${process.pid}-${counter++}`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, "wx");
    const f = fd;
    fill((b) => writeAllSync(f, b));
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeQuietly(fd);
    removeQuietly(tmp);
    throw fsWriteError(e, path, opts.hint);
  }
  syncDir(dirname(path));
}

/**
 * Check before a long computation that `path` can take an output file: not a directory, and its folder exists.
 * The write itself still reports disk-full and permission errors; this only saves the work a bad path would waste.
 */
export function checkOutputFile(path: string): void {
  if (isDirectory(path)) throw fsWriteError(codeError("EISDIR"), path);
  const dir = dirname(path);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch (e) {
    throw fsWriteError(e, path);
  }
  if (!st.isDirectory()) throw fsWriteError(codeError("ENOTDIR"), path);
}

/** Create folder `dir` (and its parents) for outputs; a file in the way or a refusal is an "io" error. */
export function makeDir(dir: string, hint?: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw fsWriteError(e, dir, hint);
  }
}

/** Write all of `b` to `fd` (writeSync may write less than asked, e.g. when the disk fills up). */
export function writeAllSync(fd: number, b: Uint8Array | string): void {
  const buf = typeof b === "string" ? Buffer.from(b, "utf8") : b;
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
}

/** Remove temp files a killed writer left in `dir` (ours are dot files with `.tmp-<pid>-`). */
export function removeStaleTemps(dir: string, name: string): string[] {
  const prefix = `.${name}${TMP_MARK}`;
  const gone: string[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.startsWith(prefix)) continue;
    removeQuietly(join(dir, f));
    gone.push(f);
  }
  return gone;
}

/** fsync a folder so a rename in it survives a power cut (not every file system allows it; then skip). */
export function syncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // best effort: the data itself is already fsynced
  } finally {
    if (fd !== null) closeQuietly(fd);
  }
}

const REASONS: Record<string, [string, string]> = {
  ENOSPC: ["the disk is full", "free some space and run the command again"],
  EDQUOT: ["the disk quota is exceeded", "free some space within your quota and run the command again"],
  EFBIG: ["the file is larger than this file system allows", "write to another file system"],
  EACCES: ["permission denied", "write to a folder you may write to, or fix its permissions"],
  EPERM: ["operation not permitted", "write to a folder you may write to, or fix its permissions"],
  EROFS: ["the file system is read-only", "write to another folder"],
  EISDIR: ["the output path is a directory", "give a file name (for example DIR/name.ext), not a folder"],
  ENOTDIR: ["a part of the output path is a file, not a folder", "check the output path"],
  EEXIST: ["a file is in the way of the output folder", "give a folder path, or move the file"],
  ENOENT: ["the output folder does not exist", "create the folder first, or check the path"],
  ENAMETOOLONG: ["the file name is too long", "use a shorter name"],
  EIO: ["the device reported an I/O error", "check the disk"],
};

/** A file-system error while writing `file` as a SteerlabError ("io"); other errors pass through unchanged. */
export function fsWriteError(e: unknown, file: string, hint?: string): unknown {
  if (isSteerlabError(e)) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== "string") return e;
  const [why, fix] = REASONS[code] ?? [`the file system refused: ${(e as Error).message}`, "check the path"];
  return new SteerlabError("io", `cannot write ${basename(file)}: ${why} (${code})`, {
    file,
    hint: hint ? `${fix}; ${hint}` : fix,
  });
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function codeError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code });
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already failing; the first error is the one to report
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
