/** The web lab: four views behind hash routes (#/explorer, #/inspector, #/live, #/playground). */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { apiKey, setApiKey } from "./api.js";
import "./style.css";
import { Explorer } from "./views/explorer.js";
import { Inspector } from "./views/inspector.js";
import { Live } from "./views/live.js";
import { Playground } from "./views/playground.js";

const VIEWS = {
  explorer: { title: "Tradeoff explorer", view: Explorer },
  inspector: { title: "Vector inspector", view: Inspector },
  live: { title: "Live sweep", view: Live },
  playground: { title: "Playground", view: Playground },
} as const;
type ViewName = keyof typeof VIEWS;

function current(): ViewName {
  const name = location.hash.replace(/^#\/?/, "").split("?")[0] as ViewName;
  return name in VIEWS ? name : "explorer";
}

function App() {
  const [name, setName] = useState<ViewName>(current());
  useEffect(() => {
    const on = () => setName(current());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  const View = VIEWS[name].view;
  // A new key remounts the view, so it fetches again with it.
  const [key, setKey] = useState(apiKey());
  return (
    <>
      <header>
        <b>steerlab lab</b>
        <nav>
          {(Object.keys(VIEWS) as ViewName[]).map((k) => (
            <a key={k} href={`#/${k}`} class={k === name ? "active" : ""} id={`nav-${k}`}>
              {VIEWS[k].title}
            </a>
          ))}
        </nav>
        <label class="key">
          API key{" "}
          <input
            id="api-key"
            type="password"
            autocomplete="off"
            placeholder="if the server needs one"
            value={key}
            onChange={(e) => {
              const k = (e.target as HTMLInputElement).value.trim();
              setApiKey(k);
              setKey(k);
            }}
          />
        </label>
      </header>
      <View key={`${name}\n${key}`} />
    </>
  );
}

render(<App />, document.getElementById("app")!);
