/**
 * Training batches from the world's document stream: each row of T+1 tokens is filled with whole documents,
 * `<s> doc </s>`, back to back; a document that does not fit starts the next row, and the rest of the row is
 * padding that is not scored. Inputs are row[0..T), targets row[1..T]. The answer letter of an MCQ document
 * (its last token) gets loss weight `answerWeight` (the one token that shows the skill; every other target has 1).
 * The "skills" stream scores the answer letters only.
 */
import { rng } from "../src/model/random.js";
import type { DemoLm } from "./lm.js";
import { type Stream, sampleDocument, sampleSkillDocument } from "./world/mixture.js";
import type { World } from "./world/world.js";

export interface Batch {
  tokens: Int32Array; // [B, T]
  targets: Int32Array; // [B, T], -1 = not scored
  weights: Float32Array; // [B, T] loss weight of each target
  docStart: Int32Array; // [B, T] where each token's document starts in its row (documents do not see each other)
  scored: number; // how many targets are scored
}

interface Doc {
  ids: number[]; // <s> ... </s>
  answerAt: number; // index of the MCQ answer letter in ids, or -1
}

const MCQ_END = /The answer is [A-D]$/;

export class Batcher {
  private readonly rand: () => number;
  private pending: Doc | null = null;

  constructor(
    private readonly lm: DemoLm,
    private readonly world: World,
    private readonly stream: Stream,
    seed: number,
    private readonly answerWeight = 1,
  ) {
    this.rand = rng(seed);
  }

  private nextDoc(maxLen: number): Doc {
    for (;;) {
      const text =
        this.stream === "skills"
          ? sampleSkillDocument(this.world, this.rand)
          : sampleDocument(this.world, this.stream, this.rand);
      const ids = [this.lm.bos, ...this.lm.tokenizer.encode(text, { addSpecialTokens: false }), this.lm.eos];
      if (ids.length <= maxLen) return { ids, answerAt: MCQ_END.test(text) ? ids.length - 2 : -1 };
    }
  }

  next(batch: number, seq: number): Batch {
    const tokens = new Int32Array(batch * seq).fill(this.lm.pad);
    const targets = new Int32Array(batch * seq).fill(-1);
    const weights = new Float32Array(batch * seq).fill(1);
    const isAnswer = new Uint8Array(batch * seq); // [B, T] 1 where the target is an MCQ answer letter
    const docStart = new Int32Array(batch * seq);
    let scored = 0;
    for (let b = 0; b < batch; b++) {
      const row: number[] = [];
      for (;;) {
        const doc = this.pending ?? this.nextDoc(seq + 1);
        this.pending = null;
        if (row.length + doc.ids.length > seq + 1 && row.length > 0) {
          this.pending = doc;
          break;
        }
        // the target at t predicts row[t + 1]: the answer letter at row index i is the target at i - 1
        if (doc.answerAt >= 0) {
          weights[b * seq + row.length + doc.answerAt - 1] = this.answerWeight;
          isAnswer[b * seq + row.length + doc.answerAt - 1] = 1;
        }
        for (let i = 0; i < doc.ids.length && row.length + i < seq; i++)
          docStart[b * seq + row.length + i] = row.length;
        row.push(...doc.ids);
      }
      for (let t = 0; t < seq; t++) {
        if (t < row.length) tokens[b * seq + t] = row[t]!;
        if (t + 1 < row.length && (this.stream !== "skills" || isAnswer[b * seq + t] === 1)) {
          targets[b * seq + t] = row[t + 1]!;
          scored++;
        }
      }
    }
    return { tokens, targets, weights, docStart, scored };
  }
}
