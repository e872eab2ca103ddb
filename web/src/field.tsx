/** A labelled input ("label <input>") whose text goes to `set`: on every keystroke, or once committed (on="change"). */
import type { InputHTMLAttributes } from "preact";

interface FieldProps {
  label: string;
  value: string | number;
  set: (value: string) => void;
  on?: "input" | "change";
  id?: string;
  /** Text when left out. */
  type?: "number";
  min?: string;
  max?: string;
  step?: string;
  placeholder?: string;
}

export function Field({ label, set, on = "input", ...input }: FieldProps) {
  const handler = (e: Event) => set((e.target as HTMLInputElement).value);
  return (
    <label>
      {label}{" "}
      <input
        // preact types `type` per input kind; these props are a subset of a text or number input's
        {...(input as InputHTMLAttributes<HTMLInputElement>)}
        onInput={on === "input" ? handler : undefined}
        onChange={on === "change" ? handler : undefined}
      />
    </label>
  );
}
