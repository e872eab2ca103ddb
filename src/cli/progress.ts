/**
 * Progress for long jobs: a bar with rate and ETA on a terminal, plain lines (at most every few seconds) when
 * stderr is not a TTY. Library code reports through a callback; only the CLI draws.
 */
export interface ProgressEvent {
  label: string;
  done: number;
  total: number;
}

export type ProgressFn = (e: ProgressEvent) => void;

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "--:--";
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return m >= 60
    ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
    : `${m}:${String(sec).padStart(2, "0")}`;
}

export function progressReporter(stream: NodeJS.WriteStream = process.stderr): ProgressFn & { end(): void } {
  const start = Date.now();
  let lastPlain = 0;
  let drew = false;
  const tty = stream.isTTY === true;
  const fn = ((e: ProgressEvent) => {
    const elapsed = (Date.now() - start) / 1000;
    const rate = e.done / Math.max(elapsed, 1e-9);
    const eta = e.done > 0 ? (e.total - e.done) / rate : Number.NaN;
    const pct = e.total > 0 ? e.done / e.total : 0;
    if (tty) {
      const width = 28;
      const fill = Math.round(pct * width);
      const bar = `${"█".repeat(fill)}${"░".repeat(width - fill)}`;
      stream.write(
        `\r${e.label} ${bar} ${e.done}/${e.total} ${(pct * 100).toFixed(0)}% ${rate.toFixed(1)}/s ETA ${fmtTime(eta)}  `,
      );
      drew = true;
    } else if (Date.now() - lastPlain > 2000 || e.done === e.total) {
      lastPlain = Date.now();
      stream.write(`${e.label}: ${e.done}/${e.total} (${(pct * 100).toFixed(0)}%), ETA ${fmtTime(eta)}\n`);
    }
  }) as ProgressFn & { end(): void };
  fn.end = () => {
    if (drew) stream.write("\n");
  };
  return fn;
}
