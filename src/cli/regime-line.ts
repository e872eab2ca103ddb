/** The efficient regime in one line of plain text, as `demo`, `experiment` and `report` print it. */
import { regimeSourceText } from "../report/html.js";
import type { RegimeReport } from "../report/types.js";

export function regimeLine(reg: RegimeReport, model?: string): string {
  const r = reg.result;
  const w = r.withinBudget;
  const t = r.tradeoff;
  return (
    `efficient regime (${model ? `${model}: ` : ""}${reg.alignmentTask} vs ${reg.helpfulnessTask}; ${regimeSourceText(reg)}):` +
    ` largest r_e within a helpfulness loss of ${r.budget}: ${w ? `${w.r.toFixed(2)} (alignment gain ${w.gain.toFixed(3)}, loss ${w.loss.toFixed(3)})` : "none"};` +
    ` best gain - ${r.lambda} x loss at r_e = ${t.r.toFixed(2)} (gain ${t.gain.toFixed(3)}, loss ${t.loss.toFixed(3)})`
  );
}
