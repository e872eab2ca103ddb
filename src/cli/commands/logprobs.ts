import type { Command } from "commander";
import { nextTokenLogprobs } from "../../model/logprobs.js";
import { openModel, requireTokenizer } from "../../model/open.js";
import { atMostForModel, int, LIMITS, openOptions, withModelOptions } from "../options.js";

export function registerLogprobs(program: Command): void {
  withModelOptions(
    program
      .command("logprobs")
      .description("the next-token distribution after a text (at its last position)")
      .requiredOption("--text <text>", "the text"),
  )
    .option("--top <k>", "how many tokens to show", int("top", 1, LIMITS.top), 10)
    .option("--no-special", "do not add the BOS token")
    .option("--json", "print JSON")
    .action(
      async (o: {
        model: string;
        text: string;
        top: number;
        special: boolean;
        json?: boolean;
        backend: string;
        threads?: number;
      }) => {
        const m = await openModel(o.model, openOptions(o));
        try {
          const tok = requireTokenizer(m);
          const vocab = m.model.config.vocabSize;
          atMostForModel("top", o.top, vocab, `the vocabulary (${vocab} tokens)`);
          const ids = tok.encode(o.text, { addSpecialTokens: o.special });
          const [dist] = await nextTokenLogprobs(m.engine, ids, { positions: "last", top: o.top });
          const top = dist!.top.map((t) => ({
            id: t.id,
            token: tok.tokenString(t.id),
            text: tok.decode([t.id]),
            logprob: t.logprob,
          }));
          if (o.json) {
            process.stdout.write(
              `${JSON.stringify({ inputIds: ids, position: dist!.position, top }, null, 2)}\n`,
            );
            return;
          }
          process.stdout.write(
            `input: ${ids.length} tokens; next-token distribution at position ${dist!.position}\n`,
          );
          process.stdout.write(
            `${"rank".padStart(4)}  ${"id".padStart(7)}  ${"logprob".padStart(9)}  ${"p".padStart(7)}  token\n`,
          );
          top.forEach((t, i) => {
            process.stdout.write(
              `${String(i + 1).padStart(4)}  ${String(t.id).padStart(7)}  ${t.logprob.toFixed(4).padStart(9)}  ${Math.exp(t.logprob).toFixed(4).padStart(7)}  ${JSON.stringify(t.text)}\n`,
            );
          });
        } finally {
          await m.engine.dispose();
        }
      },
    );
}
