/**
 * An exclusive lock on a sweep run folder: the file `lock` in it, created with O_EXCL and holding its holder
 * (pid, host, start time, command). A second process that finds it refuses with a "locked" SteerlabError naming
 * the folder and the holder. A lock whose pid is no longer alive on this host (a killed sweep) is stale and is
 * taken over; the caller gets the old holder back to warn about. A lock from another host is never taken over
 * (its pid cannot be checked from here). proper-lockfile was the candidate package, but it records no holder
 * (it detects staleness by mtime alone), and the refusal has to say who holds the folder.
 *
 * Takeover of a stale lock is itself guarded by `lock.takeover` (O_EXCL), so two processes that find the same
 * stale lock cannot both remove it: one takes over, the other then finds the new holder and refuses.
 */
import { linkSync, mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { fsWriteError, syncDir } from "../io/write-atomic.js";

export const LOCK_FILE = "lock";
const TAKEOVER_FILE = "lock.takeover";
/** A takeover guard (or an unreadable lock) older than this was left by a killed process; takeover takes ms. */
const TAKEOVER_STALE_MS = 10_000;

export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  /** argv of the holder, for the message. */
  command: string;
}

export interface RunLock {
  readonly dir: string;
  readonly file: string;
  readonly holder: LockHolder;
  /** The dead holder whose stale lock was taken over, or null. */
  readonly tookOver: LockHolder | null;
  /** Remove the lock (only if it is still ours). Idempotent. */
  release(): void;
}

/** Take the lock on run folder `dir` (created if needed), or throw "locked" naming the holder. */
export function lockRunDir(dir: string): RunLock {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw fsWriteError(e, dir, "a sweep needs a run folder it can write to");
  }
  const file = join(dir, LOCK_FILE);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: process.argv.slice(1).join(" "),
  };
  const mine = `${JSON.stringify(me)}\n`;
  let tookOver: LockHolder | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createExclusive(file, mine)) return makeLock(dir, file, me, mine, tookOver);
    const holder = readHolder(file);
    if (holder === "gone") continue; // released between our two calls: try again
    if (holder !== null && !isStale(holder)) throw lockedError(dir, file, holder);
    // Stale: a dead pid on this host, or a lock file that has been unreadable for a while.
    if (holder === null && !unreadableForAWhile(file)) throw lockedError(dir, file, null);
    if (!takeOver(dir, file, holder)) continue;
    tookOver = holder ?? { pid: 0, host: "?", started: "?", command: "(unreadable lock file)" };
  }
  const holder = readHolder(file);
  throw lockedError(dir, file, holder === "gone" || holder === null ? null : holder);
}

/** Locks this process holds now, so that a CLI stopped by a signal can release them before it exits. */
const held = new Set<RunLock>();

/** Release every run-folder lock this process holds (for a CLI that exits on a signal); the folders released. */
export function releaseHeldLocks(): string[] {
  const dirs = [...held].map((l) => l.dir);
  for (const l of [...held]) l.release();
  return dirs;
}

function makeLock(
  dir: string,
  file: string,
  holder: LockHolder,
  mine: string,
  tookOver: LockHolder | null,
): RunLock {
  let mineNow = true;
  const lock: RunLock = {
    dir,
    file,
    holder,
    tookOver,
    release() {
      if (!mineNow) return;
      mineNow = false;
      held.delete(lock);
      try {
        if (readFileSync(file, "utf8") === mine) unlinkSync(file);
      } catch {
        // already removed (e.g. the folder was deleted): nothing to release
      }
    },
  };
  held.add(lock);
  return lock;
}

/**
 * Create `file` holding `text` if it does not exist; false if it does. The text is written to a temp file first
 * and hard-linked into place (link fails when the target exists), so nobody ever reads a half-written lock.
 */
function createExclusive(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { flag: "w" });
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fsWriteError(e, file, "a sweep needs a run folder it can write to");
  }
  try {
    linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw fsWriteError(e, file, "a sweep needs a run folder it can write to");
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The holder recorded in a lock file; null when unreadable (torn), "gone" when the file no longer exists. */
function readHolder(file: string): LockHolder | null | "gone" {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : null; // e.g. a folder named "lock"
  }
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (Number.isInteger(h.pid) && typeof h.host === "string" && typeof h.started === "string")
      return { pid: h.pid!, host: h.host, started: h.started, command: String(h.command ?? "") };
  } catch {
    // not ours: lock files are linked into place whole
  }
  return null;
}

function unreadableForAWhile(file: string): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs > TAKEOVER_STALE_MS;
  } catch {
    return true;
  }
}

/** A holder on this host whose pid is gone. */
export function isStale(h: LockHolder): boolean {
  if (h.host !== hostname()) return false;
  if (h.pid === process.pid) return false;
  try {
    process.kill(h.pid, 0); // signal 0: existence check only
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * Remove a stale lock under the takeover guard, after checking that the lock is still the stale one we read.
 * False when another process got there first.
 */
function takeOver(dir: string, file: string, seen: LockHolder | null): boolean {
  const guard = join(dir, TAKEOVER_FILE);
  if (!createExclusive(guard, `${process.pid}\n`)) {
    try {
      if (Date.now() - statSync(guard).mtimeMs > TAKEOVER_STALE_MS) rmSync(guard, { force: true });
    } catch {
      // the guard went away meanwhile
    }
    return false;
  }
  try {
    const now = readHolder(file);
    if (now === "gone") return true;
    const same =
      now === null ? seen === null : seen !== null && now.pid === seen.pid && now.started === seen.started;
    if (!same) return false;
    try {
      rmSync(file, { force: true });
    } catch {
      return false; // not a file we can remove: the caller reports the folder as locked
    }
    syncDir(dir);
    return true;
  } finally {
    rmSync(guard, { force: true });
  }
}

function lockedError(dir: string, file: string, h: LockHolder | null): SteerlabError {
  const who = h
    ? `pid ${h.pid} on ${h.host}, started ${h.started}${h.command ? ` (${h.command})` : ""}`
    : "holder unknown (the lock file is unreadable)";
  const self = h !== null && h.pid === process.pid && h.host === hostname();
  const by = self
    ? "is already open in this process (close the other ResultStore first)"
    : "is in use by another steerlab process";
  return new SteerlabError("locked", `the run folder ${dir} ${by}: ${who}`, {
    file,
    hint:
      h && h.host !== hostname()
        ? `wait for it to finish; if that process is gone, delete ${file}`
        : `wait for it to finish (or stop it), or use another run folder; two sweeps never share a folder (if no steerlab process runs${h ? ` as pid ${h.pid}` : ""}, delete ${file})`,
  });
}
