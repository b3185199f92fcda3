import { Fragment } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, can, me, post } from "./api.js";
import { Failure } from "./failure.jsx";
import { fmtNumber, fmtTime, href, text } from "./util.js";

export function ModelsPage() {
  const [models, setModels] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    call("list_registered_models").then(setModels, setError);
  }, []);
  if (error) return <Failure error={error} />;
  if (!models) return <p class="muted">loading…</p>;
  if (!models.length) return <p>No registered models yet: <code>mc.register_model(…)</code> or <code>modelcycle models register</code> adds one.</p>;
  return (
    <section>
      <h1>Models</h1>
      <table class="grid" data-testid="models">
        <thead>
          <tr>
            <th>model</th>
            <th>versions</th>
            <th>latest</th>
            <th>aliases</th>
            <th>updated (UTC)</th>
          </tr>
        </thead>
        <tbody>
          {models.map((m) => (
            <tr key={m.name}>
              <td>
                <a href={href("models", [m.name])}>{m.name}</a>
              </td>
              <td>{m.versions}</td>
              <td>{m.latest}</td>
              <td>
                {Object.entries(m.aliases || {}).map(([a, v]) => (
                  <span class="alias" key={a}>
                    {a} → {v}
                  </span>
                ))}
              </td>
              <td>{fmtTime(m.updated_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Verdict({ verdict }) {
  return (
    <div class={"verdict " + (verdict.passed ? "passed" : "failed")} data-testid="verdict">
      <p>
        <strong>{verdict.passed ? "passed" : "failed"}</strong> · {fmtTime(verdict.created_at)} UTC
        {verdict.baseline_alias ? ` · compared with ${verdict.baseline_alias} (version ${verdict.baseline_version ?? "none"})` : ""}
        {typeof verdict.rows === "number" && verdict.rows ? ` · ${verdict.rows.toLocaleString("en")} rows` : ""}
        {verdict.run_id ? (
          <>
            {" "}
            · <a href={href("run", [verdict.run_id])}>evaluation run</a>
          </>
        ) : null}
      </p>
      <table class="grid">
        <thead>
          <tr>
            <th>rule</th>
            <th>result</th>
            <th>expected</th>
            <th>candidate</th>
            <th>baseline</th>
            <th>detail</th>
          </tr>
        </thead>
        <tbody>
          {(Array.isArray(verdict.rules) ? verdict.rules : []).map((r, i) => (
            <tr key={i} class={r?.passed ? "" : "differs"}>
              <td>{text(r?.rule)}</td>
              <td>{r?.passed ? "pass" : "fail"}</td>
              <td>{text(r?.expected)}</td>
              <td>{text(r?.candidate)}</td>
              <td>{text(r?.baseline)}</td>
              <td>{text(r?.detail)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Promote({ name, version, onDone }) {
  const [alias, setAlias] = useState("champion");
  const [reason, setReason] = useState("");
  const [force, setForce] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [asked, setAsked] = useState(false); // a second click confirms: an alias move is what production serves
  return (
    <form
      class="inline"
      onSubmit={(e) => {
        e.preventDefault();
        if (!asked) {
          setAsked(true);
          return;
        }
        setAsked(false);
        setBusy(true);
        setError(null);
        post(`/api/v1/models/${encodeURIComponent(name)}/promote`, { version, alias, reason: reason || null, force })
          .then(onDone, setError)
          .finally(() => setBusy(false));
      }}
    >
      <input aria-label="alias" value={alias} onInput={(e) => setAlias(e.currentTarget.value)} size={10} />
      <input aria-label="reason" placeholder="reason (audit log)" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
      <label title="promote without a passing verdict (managers only; recorded as forced)">
        <input type="checkbox" checked={force} onChange={(e) => setForce(e.currentTarget.checked)} /> force
      </label>
      <button type="submit" disabled={busy} class={asked ? "confirm" : ""}>
        {asked ? `Confirm: version ${version} becomes ${alias}${force ? " (forced)" : ""}` : "Promote"}
      </button>
      {asked ? (
        <button type="button" class="link" onClick={() => setAsked(false)}>
          cancel
        </button>
      ) : null}
      {error ? <Failure error={error} /> : null}
    </form>
  );
}

export function ModelPage({ name }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [open, setOpen] = useState(null);
  const [rollbackError, setRollbackError] = useState(null);
  const [confirming, setConfirming] = useState(null);
  const [who, setWho] = useState(null);
  useEffect(() => {
    me().then(setWho);
  }, []);
  const manages = can(who, "model", name, "manage");
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const filter = `name = '${name.replace(/'/g, "''")}'`;
    Promise.all([call("search_model_versions", { filter, limit: 1000 }), call("get_aliases", { name }), call("list_verdicts", { name }), call("alias_events", { name })]).then(
      ([versions, aliases, verdicts, events]) => setData({ versions, aliases, verdicts, events }),
      setError,
    );
  }, [name, tick]);
  if (error) return <Failure error={error} />;
  if (!data) return <p class="muted">loading…</p>;
  const refresh = () => setTick((t) => t + 1);
  const latestVerdict = (v) => data.verdicts.filter((x) => x.version === v).slice(-1)[0];
  return (
    <section class="model">
      <h1>{name}</h1>
      <p>
        <a href={href("production", [name])}>monitoring, alerts and retraining cycles in production</a>
      </p>
      {who && !manages ? (
        <p class="muted" data-testid="no-manage">
          Promoting and rolling back {name} needs the manage role on it; {who.name ? `${who.name} has ${who.roles[`model:${name}`] || who.roles["model:*"] || "no role"}` : "ask an admin"}.
        </p>
      ) : null}
      <h2>Aliases</h2>
      {Object.keys(data.aliases).length ? (
        <table class="grid" data-testid="aliases">
          <tbody>
            {Object.entries(data.aliases).map(([a, v]) => (
              <tr key={a}>
                <th>{a}</th>
                <td>version {v}</td>
                <td>
                  {!manages ? null : confirming === a ? (
                    <>
                      <button
                        class="confirm"
                        onClick={() => {
                          setConfirming(null);
                          setRollbackError(null);
                          post(`/api/v1/models/${encodeURIComponent(name)}/rollback`, { alias: a }).then(refresh, setRollbackError);
                        }}
                      >
                        Confirm: move {a} back
                      </button>{" "}
                      <button class="link" onClick={() => setConfirming(null)}>
                        cancel
                      </button>
                    </>
                  ) : (
                    <button onClick={() => setConfirming(a)}>Roll back {a}</button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">none</p>
      )}
      {rollbackError ? <Failure error={rollbackError} /> : null}
      <h2>Versions</h2>
      <table class="grid" data-testid="versions">
        <thead>
          <tr>
            <th>version</th>
            <th>aliases</th>
            <th>flavour</th>
            <th>created (UTC)</th>
            <th>by</th>
            <th>run</th>
            <th>package hash</th>
            <th>verdict</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data.versions.map((v) => {
            const verdict = latestVerdict(v.version);
            return (
              <Fragment key={v.version}>
                <tr>
                  <td>{v.version}</td>
                  <td>{(v.aliases || []).join(", ")}</td>
                  <td>{v.flavour}</td>
                  <td>{fmtTime(v.created_at)}</td>
                  <td>{v.created_by || ""}</td>
                  <td>
                    <a href={href("run", [v.run_id])}>{v.run_id.slice(0, 8)}</a>
                  </td>
                  <td>
                    <code title={v.hash}>{v.hash.slice(0, 12)}</code>
                  </td>
                  <td>
                    {verdict ? (
                      <button class="link" onClick={() => setOpen(open === v.version ? null : v.version)}>
                        {verdict.passed ? "passed" : "failed"}
                      </button>
                    ) : (
                      <span class="muted">none</span>
                    )}
                  </td>
                  <td>{manages ? <Promote name={name} version={v.version} onDone={refresh} /> : null}</td>
                </tr>
                {open === v.version && verdict ? (
                  <tr>
                    <td colSpan={9}>
                      <Verdict verdict={verdict} />
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            );
          })}
        </tbody>
      </table>
      <h2>History</h2>
      <table class="grid" data-testid="history">
        <thead>
          <tr>
            <th>when (UTC)</th>
            <th>alias</th>
            <th>action</th>
            <th>from → to</th>
            <th>who</th>
            <th>why</th>
          </tr>
        </thead>
        <tbody>
          {[...data.events].reverse().map((e) => (
            <tr key={e.id}>
              <td>{fmtTime(e.at)}</td>
              <td>{e.alias}</td>
              <td>
                {e.action}
                {e.forced ? " (forced)" : ""}
              </td>
              <td>
                {e.from_version ?? "—"} → {e.to_version ?? "—"}
              </td>
              <td>{e.actor}</td>
              <td>{e.reason || ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
