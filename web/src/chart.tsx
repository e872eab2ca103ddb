/** One ECharts chart (SVG renderer, so tests and screen readers see real elements), redrawn when its option changes. */
import * as echarts from "echarts";
import { useEffect, useRef } from "preact/hooks";
import type { ChartSpec } from "../../src/report/charts.js";

export function Chart(props: { spec: ChartSpec; id?: string; class?: string }) {
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const { option, size } = props.spec;
  useEffect(() => {
    if (!el.current) return;
    chart.current = echarts.init(el.current, null, { renderer: "svg" });
    const resize = () => chart.current?.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.current?.dispose();
      chart.current = null;
    };
  }, []);
  useEffect(() => {
    chart.current?.setOption(
      { animation: false, backgroundColor: "#ffffff", textStyle: { fontFamily: "sans-serif" }, ...option },
      { notMerge: true },
    );
  }, [option]);
  return (
    <figure class={`chart ${props.class ?? ""}`} id={props.id}>
      <div ref={el} style={{ width: "100%", height: `${size.height ?? 380}px` }} />
    </figure>
  );
}
