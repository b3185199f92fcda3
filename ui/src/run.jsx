import { useEffect, useState } from "preact/hooks";
import { ApiError, ROW, blob, call, getToken } from "./api.js";
import { LineChart } from "./chart.jsx";
import { Failure } from "./failure.jsx";
import { STATUS_CLASS, fmtDuration, fmtNumber, fmtTime, href } from "./util.js";

const TEXT = /\.(txt|log|md|json|ya?ml|py|diff|patch|toml|cfg|ini|sql|r|sh)$/i;
const IMAGE = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp" };
const PREVIEW_BYTES = 2 << 20; // larger artifacts are offered for download, not shown
export const REPORT_POLICY = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data: blob:">`;

export function KeyValues({ data, numbers, testid }) {
  const keys = Object.keys(data || {}).sort();
  if (!keys.length) return <p class="muted">none</p>;
  return (
    <table class="kv" data-testid={testid}>
      <tbody>
        {keys.map((k) => (
          <tr key={k}>
            <th>{k}</th>
            <td>{numbers ? fmtNumber(data[k]) : data[k]}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// A CSV's first rows as a table (quoted fields understood; at most 200 rows and 50 columns shown).
function csvRows(text) {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length <= 200; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") row.push(field), (field = "");
    else if (ch === "\n") row.push(field), rows.push(row.slice(0, 50)), (row = []), (field = "");
    else if (ch !== "\r") field += ch;
  }
  if (field || row.length) row.push(field), rows.push(row.slice(0, 50));
  return rows.slice(0, 201);
}

function Preview({ artifact }) {
  const [state, setState] = useState({ kind: "loading" });
  useEffect(() => {
    let url = null;
    const ext = artifact.path.split(".").pop().toLowerCase();
    if (artifact.size > PREVIEW_BYTES) {
      setState({ kind: "big" });
      return undefined;
    }
    blob(artifact.digest)
      .then(async (b) => {
        if (IMAGE[ext]) {
          url = URL.createObjectURL(new Blob([b], { type: IMAGE[ext] }));
          setState({ kind: "image", url });
        } else if (ext === "html" || ext === "htm") {
          // the frame's sandbox runs none of its scripts; the policy in front of it keeps that so if the blob is ever
          // opened as a page of its own
          url = URL.createObjectURL(new Blob([REPORT_POLICY, b], { type: "text/html" }));
          setState({ kind: "html", url });
        } else if (ext === "csv") setState({ kind: "table", rows: csvRows(await b.text()) });
        else if (ext === "parquet") {
          const { parquetRows } = await import("./parquet.js");
          try {
            const { rows, total } = await parquetRows(await b.arrayBuffer());
            setState({ kind: "table", rows, total });
          } catch (e) {
            setState({ kind: "unreadable", reason: String(e.message || e) });
          }
        }
        else if (TEXT.test(artifact.path) || artifact.path.startsWith("modelcycle/")) setState({ kind: "text", text: (await b.text()).slice(0, 200000) });
        else setState({ kind: "binary" });
      })
      .catch((error) => setState({ kind: "error", error }));
    return () => url && URL.revokeObjectURL(url);
  }, [artifact.digest, artifact.path]);
  if (state.kind === "loading") return <p class="muted">loading…</p>;
  if (state.kind === "error") return <Failure error={state.error} />;
  if (state.kind === "big") return <p class="muted">{(artifact.size / 1e6).toFixed(1)} MB: too big to preview here; `modelcycle runs download` fetches it.</p>;
  if (state.kind === "binary") return <p class="muted">no preview for this kind of file</p>;
  if (state.kind === "unreadable") return <p class="muted">no preview: {state.reason}</p>;
  if (state.kind === "image") return <img class="preview" src={state.url} alt={artifact.path} />;
  // sandboxed: the report's scripts do not run, and it cannot reach this page or the server as you
  if (state.kind === "html") return <iframe class="preview" sandbox="" src={state.url} title={artifact.path} />;
  if (state.kind === "table")
    return (
      <div class="scroll">
        {state.total > state.rows.length - 1 ? <p class="muted">the first {state.rows.length - 1} of {state.total.toLocaleString()} rows</p> : null}
        <table class="grid">
          <tbody>
            {state.rows.map((r, i) => (
              <tr key={i}>{r.map((c, j) => (i === 0 ? <th key={j}>{c}</th> : <td key={j}>{c}</td>))}</tr>
            ))}
          </tbody>
        </table>
      </div>
    );
  return <pre class="preview">{state.text}</pre>;
}

function ProfileFrame({ runId, dataset }) {
  const [url, setUrl] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let made = null;
    const path = `/api/v1/runs/${runId}/datasets/${encodeURIComponent(dataset.name)}/${encodeURIComponent(dataset.role)}/profile.html`;
    fetch(path, { headers: getToken() ? { Authorization: `Bearer ${getToken()}` } : {} })
      .then(async (r) => {
        if (!r.ok) throw new ApiError(r.status, String(r.status), (await r.text()).slice(0, 300));
        made = URL.createObjectURL(new Blob([REPORT_POLICY, await r.text()], { type: "text/html" }));
        setUrl(made);
      })
      .catch(setError);
    return () => made && URL.revokeObjectURL(made);
  }, [runId, dataset.name, dataset.role]);
  if (error) return <Failure error={error} />;
  return url ? <iframe class="preview" sandbox="" src={url} title={`profile of ${dataset.name}`} data-testid="profile" /> : <p class="muted">loading…</p>;
}

function MetricHistory({ runId, metricKey }) {
  const [series, setSeries] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    call("get_metric_history", { run_id: runId, key: metricKey }).then(
      (points) => setSeries([{ label: metricKey, steps: points.map((p) => p.step), values: points.map((p) => p.value) }]),
      setError,
    );
  }, [runId, metricKey]);
  if (error) return <Failure error={error} />;
  if (!series) return <p class="muted">loading…</p>;
  return <LineChart series={series} height={220} title={metricKey} />;
}

export function RunPage({ id }) {
  const [run, setRun] = useState(null);
  const [error, setError] = useState(null);
  const [children, setChildren] = useState(null);
  const [chart, setChart] = useState(null);
  const [artifact, setArtifact] = useState(null);
  const [profile, setProfile] = useState(null);
  useEffect(() => {
    setRun(null);
    setError(null);
    setArtifact(null);
    setProfile(null);
    // a unique prefix of an id is enough, as on the command line
    const whole = /^[0-9a-f]{32}$/.test(id) ? Promise.resolve(id) : call("resolve_run_id", { prefix: id });
    whole.then((runId) => call("get_run", { run_id: runId })).then((r) => {
      setRun(r);
      const keys = Object.keys(r.metrics || {}).sort();
      setChart(keys[0] || null);
      call("search_page", { filter: `parent_id = '${r.id}'`, order_by: ["start_time ASC"], limit: 500 }).then(setChildren, () => setChildren(null));
    }, setError);
    setChildren(null);
  }, [id]);
  if (error) return <Failure error={error} />;
  if (!run) return <p class="muted">loading…</p>;
  const ctx = run.context || {};
  const diff = (run.artifacts || []).find((a) => a.path === "modelcycle/code.diff");
  const metricKeys = Object.keys(run.metrics || {}).sort();
  return (
    <section class="run">
      <h1>
        {run.name || run.id} <span class={"status " + (STATUS_CLASS[run.status] || "")}>{run.status}</span>
      </h1>
      <p class="muted">
        {run.id} · experiment <a href={href("runs", [], { experiment: run.experiment })}>{run.experiment}</a> · started {fmtTime(run.start_time)} UTC · {fmtDuration(run.start_time, run.end_time)}
        {run.parent_id ? (
          <>
            {" "}
            · parent <a href={href("run", [run.parent_id])}>{run.parent_id.slice(0, 8)}</a>
          </>
        ) : null}
      </p>
      {run.tags["modelcycle.kind"] === "pipeline" ? (
        <p>
          <a class="button" href={href("pipeline", [run.id])}>
            The pipeline's steps
          </a>
        </p>
      ) : null}
      {run.error ? <pre class="error">{run.error}</pre> : null}
      <div class="columns-2">
        <div>
          <h2>Params</h2>
          <KeyValues data={run.params} testid="params" />
          <h2>Tags</h2>
          <KeyValues data={run.tags} testid="tags" />
        </div>
        <div>
          <h2>Metrics</h2>
          {metricKeys.length ? (
            <table class="kv" data-testid="metrics">
              <tbody>
                {metricKeys.map((k) => (
                  <tr key={k} class={chart === k ? "selected" : ""} onClick={() => setChart(k)}>
                    <th>{k}</th>
                    <td>{fmtNumber(run.metrics[k])}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="muted">none</p>
          )}
          {chart ? <MetricHistory runId={run.id} metricKey={chart} /> : null}
        </div>
      </div>
      <h2>Code</h2>
      <table class="kv">
        <tbody>
          <tr>
            <th>commit</th>
            <td>
              {ctx.git_commit || "not in a git repository"} {ctx.git_branch ? `(${ctx.git_branch})` : ""}{" "}
              {diff ? (
                <button class="link" onClick={() => setArtifact(diff)}>
                  with uncommitted changes: show the diff
                </button>
              ) : ctx.git_dirty ? (
                "with uncommitted changes"
              ) : (
                ""
              )}
            </td>
          </tr>
          <tr>
            <th>command</th>
            <td>
              <code>{(ctx.command || []).join(" ")}</code>
            </td>
          </tr>
          <tr>
            <th>reproduce</th>
            <td>
              <code>modelcycle runs reproduce {run.id}</code>
            </td>
          </tr>
          <tr>
            <th>python</th>
            <td>{ctx.python || ""} {ctx.platform || ""}</td>
          </tr>
        </tbody>
      </table>
      <h2>Datasets</h2>
      {run.inputs && run.inputs.length ? (
        <table class="grid" data-testid="datasets">
          <thead>
            <tr>
              <th>name</th>
              <th>role</th>
              <th>rows</th>
              <th>columns</th>
              <th>fingerprint</th>
              <th>source</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {run.inputs.map((d) => (
              <tr key={d.name + d.role}>
                <td>{d.name}</td>
                <td>{d.role}</td>
                <td>{d.rows ?? ""}</td>
                <td>{(d.columns || []).map((c) => `${c[0]}: ${c[1]}`).join(", ")}</td>
                <td>
                  <code>{d.fingerprint.slice(0, 12)}</code>
                </td>
                <td>{d.source || ""}</td>
                <td>
                  <button class="link" onClick={() => setProfile(profile === d ? null : d)}>
                    profile
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">none (mc.log_dataset records one, with its profile as an artifact)</p>
      )}
      {profile ? <ProfileFrame runId={run.id} dataset={profile} /> : null}
      <h2>Artifacts</h2>
      {run.artifacts && run.artifacts.length ? (
        <div class="artifacts">
          <ul data-testid="artifacts">
            {run.artifacts.map((a) => (
              <li key={a.path}>
                <button class={"link" + (artifact && artifact.path === a.path ? " active" : "")} onClick={() => setArtifact(a)}>
                  {a.path}
                </button>{" "}
                <span class="muted">{a.size.toLocaleString("en")} B</span>
              </li>
            ))}
          </ul>
          <div class="artifact-view">{artifact ? <Preview artifact={artifact} key={artifact.digest} /> : <p class="muted">choose an artifact to preview it</p>}</div>
        </div>
      ) : (
        <p class="muted">none</p>
      )}
      <h2>Child runs</h2>
      {children && children.rows.length ? (
        <table class="grid" data-testid="children">
          <thead>
            <tr>
              <th>run</th>
              <th>status</th>
              {Object.keys(children.metrics.reduce((a, m) => Object.assign(a, m), {}))
                .sort()
                .map((k) => (
                  <th key={k}>{k}</th>
                ))}
            </tr>
          </thead>
          <tbody>
            {children.rows.map((r, i) => (
              <tr key={r[ROW.id]}>
                <td>
                  <a href={href("run", [r[ROW.id]])}>{r[ROW.name] || r[ROW.id].slice(0, 8)}</a>
                </td>
                <td>{r[ROW.status]}</td>
                {Object.keys(children.metrics.reduce((a, m) => Object.assign(a, m), {}))
                  .sort()
                  .map((k) => (
                    <td key={k}>{fmtNumber(children.metrics[i][k])}</td>
                  ))}
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">none</p>
      )}
      {children && children.rows.length > 1 ? (
        <p>
          <a class="button" href={href("compare", [], { ids: children.rows.map((r) => r[ROW.id]).join(",") })}>
            Compare the child runs
          </a>
        </p>
      ) : null}
    </section>
  );
}
