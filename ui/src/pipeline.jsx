import { useEffect, useMemo, useState } from "preact/hooks";
import dagre from "@dagrejs/dagre";
import { ROW, blob, call, parse } from "./api.js";
import { Failure } from "./failure.jsx";
import { STATUS_CLASS, dict, fmtTime, href } from "./util.js";

const KIND = "tags.`modelcycle.kind`";
const NODE_W = 190;
const NODE_H = 58;
const LIVE_MS = 4000;

export function PipelinesPage() {
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    call("search_page", { filter: `${KIND} = 'pipeline'`, order_by: ["start_time DESC"], limit: 200 }).then(setPage, setError);
  }, []);
  if (error) return <Failure error={error} />;
  if (!page) return <p class="muted">loading…</p>;
  if (!page.rows.length) return <p>No pipeline runs yet: <code>modelcycle pipeline run</code> makes one.</p>;
  return (
    <section>
      <h1>Pipelines</h1>
      <table class="grid" data-testid="pipelines">
        <thead>
          <tr>
            <th>pipeline</th>
            <th>run</th>
            <th>status</th>
            <th>experiment</th>
            <th>started (UTC)</th>
            <th>executor</th>
          </tr>
        </thead>
        <tbody>
          {page.rows.map((r, i) => (
            <tr key={r[ROW.id]}>
              <td>
                <a href={href("pipeline", [r[ROW.id]])}>{page.tags[i]["modelcycle.pipeline"] || r[ROW.name]}</a>
              </td>
              <td>
                <a href={href("run", [r[ROW.id]])}>{r[ROW.name] || r[ROW.id].slice(0, 8)}</a>
              </td>
              <td>
                <span class={"status " + (STATUS_CLASS[r[ROW.status]] || "")}>{r[ROW.status]}</span>
              </td>
              <td>{r[ROW.experiment]}</td>
              <td>{fmtTime(r[ROW.start])}</td>
              <td>{page.tags[i]["modelcycle.executor"] || ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

// Steps from the pipeline's record (pipeline.json, written when it ends) or, while it runs, from its step runs.
function stepsOf(record, children) {
  const steps = dict();
  if (record && record.steps && typeof record.steps === "object")
    for (const [name, s] of Object.entries(record.steps)) steps[name] = { ...(s && typeof s === "object" ? s : {}), name, status: String(s?.status ?? "unknown") };
  children.rows.forEach((r, i) => {
    const tags = children.tags[i];
    const name = tags["modelcycle.step"];
    if (!name) return;
    const known = steps[name] || { name, upstream: [], status: "running", reason: "" };
    const cached = tags["modelcycle.cached"] === "true";
    steps[name] = {
      ...known,
      run_id: known.run_id || r[ROW.id],
      cached: known.cached ?? cached,
      status: record ? known.status : r[ROW.status] === "RUNNING" ? "running" : cached ? "cached" : r[ROW.status].toLowerCase(),
      duration: known.duration ?? (r[ROW.end] && r[ROW.start] ? r[ROW.end] - r[ROW.start] : null),
    };
  });
  return steps;
}

function Dag({ steps, chosen, onChoose }) {
  const layout = useMemo(() => {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 60, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const name of Object.keys(steps)) g.setNode(name, { width: NODE_W, height: NODE_H });
    for (const [name, s] of Object.entries(steps)) for (const u of Array.isArray(s.upstream) ? s.upstream : []) if (typeof u === "string" && u in steps) g.setEdge(u, name);
    dagre.layout(g);
    return { g, width: g.graph().width || 0, height: g.graph().height || 0 };
  }, [JSON.stringify(Object.values(steps).map((s) => [s.name, s.upstream]))]);
  const { g } = layout;
  return (
    <svg class="dag" width={layout.width} height={layout.height} data-testid="dag" role="img" aria-label="pipeline steps">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
          <path d="M 0 0 L 10 5 L 0 10 z" fill="#94a3b8" />
        </marker>
      </defs>
      {g.edges().map((e) => {
        const pts = g.edge(e).points;
        return <polyline key={`${e.v}->${e.w}`} points={pts.map((p) => `${p.x},${p.y}`).join(" ")} fill="none" stroke="#94a3b8" stroke-width="1.5" marker-end="url(#arrow)" />;
      })}
      {g.nodes().map((name) => {
        const n = g.node(name);
        const s = steps[name];
        return (
          <g key={name} class={`step step-${s.status}${chosen === name ? " chosen" : ""}`} transform={`translate(${n.x - NODE_W / 2},${n.y - NODE_H / 2})`} onClick={() => onChoose(name)} data-step={name}>
            <rect width={NODE_W} height={NODE_H} rx="6" />
            <text x="10" y="22" class="step-name">
              {name.length > 24 ? name.slice(0, 23) + "…" : name}
            </text>
            <text x="10" y="42" class="step-status">
              {s.status}
              {s.cached ? " (cache hit)" : ""}
              {typeof s.duration === "number" ? ` · ${s.duration.toFixed(2)} s` : ""}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

function StepDetail({ step }) {
  const [run, setRun] = useState(null);
  const [logs, setLogs] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setRun(null);
    setLogs(null);
    if (!step.run_id) return;
    call("get_run", { run_id: step.run_id }).then((r) => {
      setRun(r);
      const log = (r.artifacts || []).find((a) => a.path === "logs.txt");
      if (log) blob(log.digest).then((b) => b.text()).then((t) => setLogs(t.slice(-100000)), setError);
    }, setError);
  }, [step.run_id]);
  return (
    <div class="step-detail" data-testid="step-detail">
      <h2>{step.name}</h2>
      <table class="kv">
        <tbody>
          <tr>
            <th>status</th>
            <td>
              {step.status}
              {step.cached ? " (output reused from the cache)" : ""}
            </td>
          </tr>
          <tr>
            <th>why</th>
            <td data-testid="why">{step.reason || ""}</td>
          </tr>
          {step.error ? (
            <tr>
              <th>error</th>
              <td>
                <pre class="error">{step.error}</pre>
              </td>
            </tr>
          ) : null}
          <tr>
            <th>run</th>
            <td>{step.run_id ? <a href={href("run", [step.run_id])}>{step.run_id}</a> : "—"}</td>
          </tr>
          <tr>
            <th>cache key</th>
            <td>
              <code>{step.cache_key || ""}</code>
            </td>
          </tr>
          <tr>
            <th>output</th>
            <td>{step.output ? <code>{JSON.stringify(step.output)}</code> : "—"}</td>
          </tr>
          <tr>
            <th>inputs</th>
            <td>
              {run
                ? Object.entries(run.tags || {})
                    .filter(([k]) => k.startsWith("input."))
                    .map(([k, v]) => (
                      <div key={k}>
                        {k.slice(6)} = {v}
                      </div>
                    ))
                : ""}
            </td>
          </tr>
        </tbody>
      </table>
      {error ? <Failure error={error} /> : null}
      <h2>Logs</h2>
      {logs != null ? <pre class="preview" data-testid="step-logs">{logs}</pre> : <p class="muted">{step.run_id ? "no output" : "not run"}</p>}
    </div>
  );
}

export function PipelinePage({ id }) {
  const [state, setState] = useState(null);
  const [error, setError] = useState(null);
  const [chosen, setChosen] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let stop = false;
    (async () => {
      const run = await call("get_run", { run_id: id });
      const children = await call("search_page", { filter: `parent_id = '${id.replace(/'/g, "")}'`, order_by: ["start_time ASC"], limit: 1000 });
      const art = (run.artifacts || []).find((a) => a.path === "pipeline.json");
      const record = art ? parse(await (await blob(art.digest)).text()) : null;
      if (!stop) setState({ run, children, record });
    })().catch((e) => !stop && setError(e));
    return () => {
      stop = true;
    };
  }, [id, tick]);
  useEffect(() => {
    if (!state || state.run.status !== "RUNNING") return undefined;
    const t = setTimeout(() => setTick((x) => x + 1), LIVE_MS); // a running pipeline is followed live
    return () => clearTimeout(t);
  }, [state]);
  if (error) return <Failure error={error} />;
  if (!state) return <p class="muted">loading…</p>;
  const steps = stepsOf(state.record, state.children);
  const name = state.run.tags["modelcycle.pipeline"] || state.run.name;
  const counts = Object.values(steps).reduce((a, s) => ({ ...a, [s.status]: (a[s.status] || 0) + 1 }), {});
  return (
    <section class="pipeline">
      <h1>
        {name} <span class={"status " + (STATUS_CLASS[state.run.status] || "")}>{state.run.status}</span>
      </h1>
      <p class="muted">
        run <a href={href("run", [state.run.id])}>{state.run.id}</a> · started {fmtTime(state.run.start_time)} UTC ·{" "}
        {Object.entries(counts)
          .map(([k, v]) => `${v} ${k}`)
          .join(", ")}
      </p>
      {state.run.error ? <pre class="error">{state.run.error}</pre> : null}
      {Object.keys(steps).length ? <Dag steps={steps} chosen={chosen} onChoose={setChosen} /> : <p class="muted">no steps yet</p>}
      {chosen && steps[chosen] ? <StepDetail step={steps[chosen]} /> : <p class="muted">choose a step to see why it ran, its logs and its output</p>}
    </section>
  );
}
