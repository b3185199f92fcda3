import { useEffect, useMemo, useState } from "preact/hooks";
import { lazy, Suspense } from "preact/compat";
import { ApiError, ROW, call } from "./api.js";
import { LineChart, Scatter } from "./chart.jsx";
import { Failure } from "./failure.jsx";
import { fmtNumber, href } from "./util.js";

const MAX_RUNS = 100;
const ParallelCoordinates = lazy(() => import("./parallel.jsx").then((m) => ({ default: m.ParallelCoordinates })));

function SideBySide({ runs, kind, testid }) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r[kind] || {})))].sort();
  if (!keys.length) return <p class="muted">none</p>;
  const show = (v) => (v === undefined ? "—" : kind === "metrics" ? fmtNumber(v) : v);
  return (
    <div class="scroll">
      <table class="grid compare" data-testid={testid}>
        <thead>
          <tr>
            <th>{kind}</th>
            {runs.map((r) => (
              <th key={r.id}>
                <a href={href("run", [r.id])}>{r.name || r.id.slice(0, 8)}</a>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => {
            const values = runs.map((r) => (r[kind] || {})[k]);
            const differs = new Set(values.map((v) => JSON.stringify(v ?? null))).size > 1;
            return (
              <tr key={k} class={differs ? "differs" : ""}>
                <th>{k}</th>
                {values.map((v, i) => (
                  <td key={runs[i].id}>{show(v)}</td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function ComparePage({ ids, metric: chosenMetric = "", param: chosenParam = "" }) {
  const [runs, setRuns] = useState(null);
  const [error, setError] = useState(null);
  const [histories, setHistories] = useState(null); // {key, data}
  // run ids as the address gives them: lower-cased, each once; what is not a run id is left out (and said so)
  const given = [...new Set(ids.map((id) => id.trim().toLowerCase()))];
  const valid = given.filter((id) => /^[0-9a-f]{1,32}$/.test(id));
  const skipped = given.length - valid.length;
  const clean = valid.slice(0, MAX_RUNS);
  const wanted = clean.join(",");
  useEffect(() => {
    // one search for the runs' records and one call for the histories, however many runs are compared
    if (!clean.length) return undefined;
    let live = true; // an answer for runs no longer shown is dropped
    setRuns(null);
    call("search_page", { filter: `run_id in (${clean.map((id) => `'${id}'`).join(", ")})`, limit: MAX_RUNS }).then((page) => {
      if (!live) return;
      const byId = Object.fromEntries(page.rows.map((r, i) => [r[ROW.id], { id: r[ROW.id], name: r[ROW.name], params: page.params[i], metrics: page.metrics[i], tags: page.tags[i] }]));
      const rs = clean.map((id) => byId[id]).filter(Boolean);
      if (rs.length) setRuns(rs);
      else setError(new ApiError(404, "NotFoundError", "none of these runs exists (or you may not read them)"));
    }, (e) => live && setError(e));
    return () => {
      live = false;
    };
  }, [wanted]);
  const metricKeys = useMemo(() => (runs ? [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort() : []), [runs]);
  const paramKeys = useMemo(() => (runs ? [...new Set(runs.flatMap((r) => Object.keys(r.params || {})))].sort() : []), [runs]);
  // the metric and param named in the address (a link to this view), else the first of the runs' keys; a metric named
  // in the address is fetched at once, beside the runs' records
  const metric = chosenMetric || metricKeys[0] || "";
  const param =
    chosenParam ||
    paramKeys.find((k) => runs.some((r) => r.params[k] !== undefined && !Number.isNaN(Number(r.params[k])))) ||
    "";
  useEffect(() => {
    if (!metric || !clean.length) return undefined;
    let live = true; // the histories of a metric chosen before this one are dropped
    setHistories(null);
    call("metric_histories", { run_ids: clean, key: metric }).then(
      (data) => live && setHistories({ key: metric, data }),
      (e) => live && setError(e),
    );
    return () => {
      live = false;
    };
  }, [wanted, metric]);
  const series = useMemo(
    () =>
      runs && histories && histories.key === metric
        ? runs.filter((r) => histories.data[r.id]).map((r) => ({ label: r.name || r.id.slice(0, 8), steps: histories.data[r.id][0], values: histories.data[r.id][1] }))
        : null,
    [runs, histories, metric],
  );
  const choose = (patch) => {
    location.hash = href("compare", [], { ids: ids.join(","), metric, param, ...patch });
  };
  if (error) return <Failure error={error} />;
  if (!ids.length) return <p>Select runs on the runs page (their check boxes), then Compare.</p>;
  if (!clean.length) return <p class="error">None of the ids in this address is a run id (32 hexadecimal characters).</p>;
  if (!runs) return <p class="muted">loading {clean.length} runs…</p>;
  const numericParams = paramKeys.filter((k) => runs.every((r) => r.params[k] === undefined || !Number.isNaN(Number(r.params[k])))).slice(0, 12);
  const points = runs.filter((r) => r.params[param] !== undefined && typeof r.metrics[metric] === "number" && !Number.isNaN(Number(r.params[param])));
  return (
    <section class="compare">
      <h1>Compare {runs.length} runs</h1>
      {valid.length > MAX_RUNS ? <p class="muted">the first {MAX_RUNS} of the {valid.length} runs chosen</p> : null}
      {skipped > 0 ? <p class="muted">{skipped === 1 ? "1 id in the address is not a run id and was left out" : `${skipped} ids in the address are not run ids and were left out`}</p> : null}
      {runs.length < clean.length ? <p class="muted">runs not found (or that you may not read): {clean.length - runs.length}</p> : null}
      <h2>Params</h2>
      <SideBySide runs={runs} kind="params" testid="compare-params" />
      <h2>Metrics</h2>
      <SideBySide runs={runs} kind="metrics" testid="compare-metrics" />
      <h2>
        History of{" "}
        <select aria-label="metric" value={metric} onChange={(e) => choose({ metric: e.currentTarget.value })}>
          {(metricKeys.includes(metric) ? metricKeys : [metric, ...metricKeys]).map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </h2>
      {series ? series.length ? <LineChart series={series} /> : <p class="muted">no history</p> : <p class="muted">loading…</p>}
      {numericParams.length && metricKeys.length && runs.length > 2 ? (
        <>
          <h2>Params and metrics of every run</h2>
          <Suspense fallback={<p class="muted">loading…</p>}>
            <ParallelCoordinates runs={runs} params={numericParams} metrics={metric ? [metric] : metricKeys.slice(0, 1)} />
          </Suspense>
        </>
      ) : null}
      {paramKeys.length && metric ? (
        <>
          <h2>
            {metric} against{" "}
            <select aria-label="param" value={param} onChange={(e) => choose({ param: e.currentTarget.value })}>
              {paramKeys.map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
          </h2>
          {points.length ? (
            <Scatter xs={points.map((r) => Number(r.params[param]))} ys={points.map((r) => r.metrics[metric])} xLabel={param} yLabel={metric} />
          ) : (
            <p class="muted">{param} is not a number in these runs</p>
          )}
        </>
      ) : null}
    </section>
  );
}
