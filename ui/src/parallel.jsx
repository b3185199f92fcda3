import { useEffect, useRef } from "preact/hooks";
import * as echarts from "echarts/core";
import { ParallelChart } from "echarts/charts";
import { ParallelComponent, TooltipComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([ParallelChart, ParallelComponent, TooltipComponent, CanvasRenderer]);

// One axis per numeric param and per metric, one line per run (tuning trials), coloured by the last axis.
export function ParallelCoordinates({ runs, params, metrics }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current) return undefined;
    const dims = [...params.map((k) => ({ name: k, get: (r) => Number(r.params[k]) })), ...metrics.map((k) => ({ name: k, get: (r) => r.metrics[k] }))];
    const rows = runs.map((r) => dims.map((d) => { const v = d.get(r); return typeof v === "number" && Number.isFinite(v) ? v : null; }));
    const chart = echarts.init(box.current, null, { renderer: "canvas" });
    const last = rows.map((r) => r[r.length - 1]).filter((v) => v != null);
    chart.setOption({
      animation: false,
      parallelAxis: dims.map((d, i) => ({ dim: i, name: d.name, scale: true, nameTextStyle: { fontSize: 11 } })),
      parallel: { left: 40, right: 60, top: 40, bottom: 20 },
      visualMap: undefined,
      series: [{
        type: "parallel",
        lineStyle: { width: 1.2, opacity: 0.6 },
        data: rows.map((values) => {
          const v = values[values.length - 1];
          const lo = Math.min(...last), hi = Math.max(...last);
          const t = v == null || hi === lo ? 0.5 : (v - lo) / (hi - lo);
          return { value: values, lineStyle: { color: `hsl(${220 - 200 * t}, 70%, 45%)` } };
        }),
      }],
    });
    const resize = new ResizeObserver(() => chart.resize());
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      chart.dispose();
    };
  }, [runs, params, metrics]);
  return <div class="parallel" ref={box} data-testid="parallel" />;
}
