import { useEffect, useState } from "preact/hooks";
import { call } from "./api.js";
import { TimeChart } from "./chart.jsx";
import { Failure } from "./failure.jsx";
import { dict, fmtNumber, fmtTime, href, text } from "./util.js";

const RANGES = { "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "365d": 365 * 86400 };
const LIVE_MS = 30000;

export function ProductionIndex() {
  const [models, setModels] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    call("list_registered_models").then(setModels, setError);
  }, []);
  if (error) return <Failure error={error} />;
  if (!models) return <p class="muted">loading…</p>;
  return (
    <section>
      <h1>Production</h1>
      {models.length ? (
        <ul data-testid="production-models">
          {models.map((m) => (
            <li key={m.name}>
              <a href={href("production", [m.name])}>{m.name}</a>{" "}
              <span class="muted">
                {Object.entries(m.aliases || {})
                  .map(([a, v]) => `${a} → ${v}`)
                  .join(", ")}
              </span>
            </li>
          ))}
        </ul>
      ) : (
        <p>No registered models yet.</p>
      )}
    </section>
  );
}

const series = (windows, pick) => windows.map((w) => pick(w.summary || {}, w));

function metricKeys(windows) {
  const keys = new Set();
  for (const w of windows) for (const k of Object.keys(w.summary?.performance?.metrics || {})) keys.add(k);
  return [...keys].sort();
}

function DriftColumns({ windows }) {
  const last = [...windows].reverse().find((w) => w.summary?.drift);
  if (!last) return <p class="muted">no drift measured yet (the served version needs reference data: log the model with its training data)</p>;
  const drifted = dict();
  for (const w of windows) for (const c of Array.isArray(w.summary?.drift?.drifted_columns) ? w.summary.drift.drifted_columns : []) drifted[c] = (drifted[c] || 0) + 1;
  const columns = Object.entries(last.summary.drift.columns || {}).filter(([, c]) => c && typeof c === "object").sort((a, b) => Number(b[1].drifted) - Number(a[1].drifted) || a[0].localeCompare(b[0]));
  return (
    <table class="grid" data-testid="drift-columns">
      <thead>
        <tr>
          <th>column</th>
          <th>last window</th>
          <th>method</th>
          <th>statistic</th>
          <th>threshold</th>
          <th>p-value</th>
          <th>windows drifted</th>
        </tr>
      </thead>
      <tbody>
        {columns.map(([name, c]) => (
          <tr key={name} class={c.drifted ? "differs" : ""}>
            <td>{name}</td>
            <td>{c.type_change ? `type changed: ${text(c.type_change)}` : c.drifted ? "drifted" : "ok"}</td>
            <td>{text(c.method)}</td>
            <td>{fmtNumber(c.statistic)}</td>
            <td>{fmtNumber(c.threshold)}</td>
            <td>{fmtNumber(c.p_value)}</td>
            <td>
              {drifted[name] || 0} / {windows.filter((w) => w.summary?.drift).length}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Lineage({ cycle, events }) {
  const event = cycle.alias_event_id != null ? events.find((e) => e.id === cycle.alias_event_id) : null;
  const links = [
    { label: "trigger", value: text(cycle.trigger) + (typeof cycle.alert_id === "string" ? ` (alert ${cycle.alert_id.slice(0, 8)})` : "") },
    { label: "pipeline run", value: typeof cycle.run_id === "string" ? <a href={href("pipeline", [cycle.run_id])}>{cycle.run_id.slice(0, 8)}</a> : "—" },
    { label: "candidate", value: cycle.version != null ? `${text(cycle.model)}/${text(cycle.version)}` : "—" },
    { label: "verdict", value: typeof cycle.verdict_id === "string" ? cycle.verdict_id.slice(0, 8) : "—" },
    { label: "alias move", value: event && event.name === cycle.model ? `${event.alias}: ${event.from_version ?? "—"} → ${event.to_version} by ${event.actor}` : "—" },
  ];
  return (
    <ol class="lineage" data-testid="lineage">
      {links.map((l) => (
        <li key={l.label} class={l.value === "—" ? "missing" : ""}>
          <span class="muted">{l.label}</span>
          <span>{l.value}</span>
        </li>
      ))}
    </ol>
  );
}

export function ProductionPage({ name, range }) {
  const seconds = RANGES[range] || RANGES["7d"];
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const start = Date.now() / 1000 - seconds;
    Promise.all([
      call("window_list", { model: name, start, limit: 5000 }),
      call("alert_list", { model: name, limit: 200 }),
      call("cycle_list", { limit: 100, equal: { model: name } }),
      call("alias_events", { name }).catch(() => []),
    ]).then(([windows, alerts, cycles, events]) => setData({ windows, alerts, cycles, events }), setError);
  }, [name, seconds, tick]);
  useEffect(() => {
    const t = setInterval(() => !document.hidden && setTick((x) => x + 1), LIVE_MS);
    return () => clearInterval(t);
  }, []);
  if (error) return <Failure error={error} />;
  if (!data) return <p class="muted">loading…</p>;
  const w = data.windows.filter((x) => x.seconds === Math.min(...data.windows.map((y) => y.seconds)) && x.summary && typeof x.summary === "object");
  const times = w.map((x) => x.start);
  const metrics = metricKeys(w);
  const firing = data.alerts.filter((a) => a.state === "firing");
  return (
    <section class="production">
      <h1>{name} in production</h1>
      <div class="toolbar">
        <label>
          Over the last{" "}
          <select aria-label="range" value={range || "7d"} onChange={(e) => (location.hash = href("production", [name], { range: e.currentTarget.value }))}>
            {Object.keys(RANGES).map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <span class="muted" data-testid="windows">
          {w.length} windows{w.length ? ` of ${w[0].seconds} s` : ""} · {firing.length} alerts firing
        </span>
        <a href={href("models", [name])}>the model's versions and aliases</a>
      </div>
      {!w.length ? (
        <p class="muted">No monitoring windows stored in this range: `modelcycle monitor {name}` (or the agent) computes them from the prediction log.</p>
      ) : (
        <div class="charts">
          <TimeChart title="traffic (rows)" times={times} series={[{ label: "rows", values: series(w, (s) => s.rows ?? 0) }]} />
          <TimeChart
            title="latency (ms)"
            times={times}
            series={[
              { label: "p50", values: series(w, (s) => s.latency_ms?.p50) },
              { label: "p99", values: series(w, (s) => s.latency_ms?.p99) },
            ]}
          />
          <TimeChart title="share of columns drifted" times={times} series={[{ label: "drift share", values: series(w, (s) => s.drift?.share) }]} />
          <TimeChart title="prediction drift (statistic)" times={times} series={[{ label: "prediction drift", values: series(w, (s) => s.prediction_drift?.statistic) }]} />
          {metrics.length ? (
            <TimeChart title="live metrics (as labels arrive)" times={times} series={metrics.map((k) => ({ label: k, values: series(w, (s) => s.performance?.metrics?.[k]) }))} />
          ) : null}
          <TimeChart title="labelled rows" times={times} series={[{ label: "labelled", values: series(w, (s) => s.performance?.labelled ?? 0) }]} />
          {w.some((x) => x.summary?.shadow) ? (
            <TimeChart title="shadow agreement" times={times} series={[{ label: "agreement", values: series(w, (s) => s.shadow?.agreement) }]} />
          ) : null}
        </div>
      )}
      <h2>Drift per column</h2>
      <DriftColumns windows={w} />
      <h2>Alerts</h2>
      {data.alerts.length ? (
        <table class="grid" data-testid="alerts">
          <thead>
            <tr>
              <th>state</th>
              <th>rule</th>
              <th>message</th>
              <th>raised (UTC)</th>
              <th>resolved (UTC)</th>
            </tr>
          </thead>
          <tbody>
            {data.alerts.map((a) => (
              <tr key={a.id} class={a.state === "firing" ? "differs" : ""}>
                <td>{text(a.state)}</td>
                <td>{text(a.rule)}</td>
                <td>{text(a.message)}</td>
                <td>{fmtTime(a.raised_at)}</td>
                <td>{fmtTime(a.resolved_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">none</p>
      )}
      <h2>Continuous training</h2>
      {data.cycles.length ? (
        <table class="grid" data-testid="cycles">
          <thead>
            <tr>
              <th>started (UTC)</th>
              <th>state</th>
              <th>lineage: trigger → run → candidate → verdict → alias move</th>
            </tr>
          </thead>
          <tbody>
            {data.cycles.map((c) => (
              <tr key={c.id}>
                <td>{fmtTime(c.started_at)}</td>
                <td>{text(c.state)}</td>
                <td>
                  <Lineage cycle={c} events={data.events} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">no cycles yet (`modelcycle agent` runs them)</p>
      )}
    </section>
  );
}
