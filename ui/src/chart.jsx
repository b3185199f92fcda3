import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];

// Metric histories by step: one line per series ({label, steps, values}), on one x axis (uPlot joins them).
export function LineChart({ series, height = 260, title }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || !series.length) return undefined;
    const data = uPlot.join(series.map((s) => [Float64Array.from(s.steps), Float64Array.from(s.values.map((v) => (typeof v === "number" ? v : NaN)))]));
    const plot = new uPlot(
      {
        title,
        width: Math.max(320, box.current.clientWidth),
        height,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, {}],
        series: [{ label: "step" }, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: s.steps.length < 60 } }))],
        legend: { live: true },
      },
      data,
      box.current,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(320, box.current.clientWidth), height }));
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [series, height, title]);
  return <div class="chart" ref={box} data-testid="chart" />;
}

// A scatter of one param against one metric over runs (tuning trials): points only.
export function Scatter({ xs, ys, xLabel, yLabel }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || !xs.length) return undefined;
    const order = xs.map((x, i) => [x, ys[i]]).sort((a, b) => a[0] - b[0]);
    const plot = new uPlot(
      {
        width: Math.max(320, box.current.clientWidth),
        height: 260,
        scales: { x: { time: false } },
        axes: [{ label: xLabel }, { label: yLabel }],
        series: [{ label: xLabel }, { label: yLabel, stroke: COLORS[0], width: 0, paths: () => null, points: { show: true, size: 7, fill: COLORS[0] } }],
      },
      [order.map((p) => p[0]), order.map((p) => p[1])],
      box.current,
    );
    return () => plot.destroy();
  }, [xs, ys, xLabel, yLabel]);
  return <div class="chart" ref={box} data-testid="scatter" />;
}

// Values over time (seconds since the epoch, UTC), one line per series ({label, values}); gaps where a value is missing.
export function TimeChart({ title, times, series, height = 180 }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || !times.length) return undefined;
    const num = (v) => (typeof v === "number" ? v : null);
    const plot = new uPlot(
      {
        title,
        width: Math.max(300, box.current.clientWidth),
        height,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        axes: [{ values: (u, ticks) => {
          const span = ticks.length > 1 ? ticks[ticks.length - 1] - ticks[0] : 0;
          return ticks.map((t) => new Date(t * 1000).toISOString().slice(span > 86400 ? 5 : 11, 16).replace("T", " "));
        } }, {}],
        series: [
          { label: "time (UTC)", value: (u, t) => (t == null ? "--" : new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ")) },
          ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, points: { show: times.length < 80 } })),
        ],
      },
      [times, ...series.map((s) => s.values.map(num))],
      box.current,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(300, box.current.clientWidth), height }));
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [title, times, series, height]);
  return <div class="chart time-chart" ref={box} data-testid="time-chart" />;
}
