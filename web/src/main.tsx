/** The web lab: four views behind hash routes (#/explorer, #/inspector, #/live, #/playground). */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
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
      </header>
      <View key={name} />
    </>
  );
}

render(<App />, document.getElementById("app")!);
