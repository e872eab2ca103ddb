/**
 * SIGINT (Ctrl-C) and SIGTERM (kill, systemd, docker stop, CI timeouts) stop a long command the same way: the
 * first signal asks it to stop cleanly (a sweep finishes its forward, stores what it scored and releases its
 * run-folder lock); a second one releases every held lock and exits at once.
 */
import { releaseHeldLocks } from "../eval/run-lock.js";

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** The shell's exit status of a process ended by `signal`: 128 + its number (SIGINT 130, SIGTERM 143). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return signal === "SIGTERM" ? 143 : 130;
}

/**
 * Until the returned function is called, the first SIGINT or SIGTERM calls `stop`; a second one releases the
 * run-folder locks this process holds and exits. Without `stop`, the first signal does that already.
 */
export function onStopSignals(stop?: (signal: NodeJS.Signals) => void): () => void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stop && !stopping) {
      stopping = true;
      stop(signal);
      return;
    }
    const dirs = releaseHeldLocks();
    process.stderr.write(
      `\nsteerlab: stopped by ${signal}${dirs.length ? `; released the lock of ${dirs.join(", ")}; rerun the same command to resume` : ""}\n`,
    );
    process.exit(signalExitCode(signal));
  };
  for (const s of STOP_SIGNALS) process.on(s, handler);
  return () => {
    for (const s of STOP_SIGNALS) process.off(s, handler);
  };
}
