/**
 * Server-sent events over fetch (not EventSource, which cannot send an Authorization header): calls onEvent for
 * each event with its name ("message" when unnamed) and data; resolves when the stream ends or `stop` says so.
 */
export async function readSse(
  body: NonNullable<Response["body"]>,
  onEvent: (name: string, data: string) => boolean | undefined,
): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replaceAll("\r\n", "\n");
      let cut = buf.indexOf("\n\n");
      while (cut >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        cut = buf.indexOf("\n\n");
        let name = "message";
        const data: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length && onEvent(name, data.join("\n")) === true) return; // true: the caller is done
      }
    }
  } finally {
    reader.releaseLock();
  }
}
