import type { SteeringObject } from "../../../src/serve/schemas.js";
import { authHeaders } from "../api.js";
import { readSse } from "../sse.js";

/**
 * Server mode of the playground: one streamed OpenAI completion per coefficient, with steerlab's `steering`
 * request field (POST /v1/completions or /v1/chat/completions, `stream: true`), read as server-sent events.
 */

export interface StreamRequest {
  prompt: string;
  chat: boolean;
  maxTokens: number;
  /** Generate max_tokens even past the end-of-sequence token (the server's ignore_eos). */
  ignoreEos?: boolean;
  /** false: no steering at all. */
  /** The server's `steering` field (src/serve/schemas.ts): layers are block indices, negative from the end. */
  steering: SteeringObject | false;
  signal?: AbortSignal;
}

/** Stream one completion; `onText` gets each piece of text; resolves with the finish reason. */
export async function streamCompletion(req: StreamRequest, onText: (t: string) => void): Promise<string> {
  const body = {
    model: "steerlab",
    ...(req.chat ? { messages: [{ role: "user", content: req.prompt }] } : { prompt: req.prompt }),
    max_tokens: req.maxTokens,
    ...(req.ignoreEos ? { ignore_eos: true } : {}),
    temperature: 0,
    stream: true,
    steering: req.steering,
  };
  const r = await fetch(req.chat ? "/v1/chat/completions" : "/v1/completions", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      ...authHeaders(),
    },
    body: JSON.stringify(body),
    ...(req.signal ? { signal: req.signal } : {}),
  });
  if (!r.ok || !r.body) {
    const t = await r.text();
    let msg = t.slice(0, 300);
    try {
      msg = (JSON.parse(t) as { error: { message: string } }).error.message;
    } catch {
      // not JSON: keep the text
    }
    throw new Error(`HTTP ${r.status}: ${msg}`);
  }
  let finish = "";
  await readSse(r.body, (_name, data) => {
    if (data === "[DONE]") return true;
    const chunk = JSON.parse(data) as {
      choices?: { text?: string; delta?: { content?: string }; finish_reason?: string | null }[];
      error?: { message: string };
    };
    if (chunk.error) throw new Error(chunk.error.message);
    const c = chunk.choices?.[0];
    const text = c?.text ?? c?.delta?.content ?? "";
    if (text) onText(text);
    if (c?.finish_reason) finish = c.finish_reason;
    return undefined;
  });
  return finish;
}
