import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { Virtualizer, elementScroll, observeElementOffset, observeElementRect } from "@tanstack/virtual-core";
import { ROW, call } from "./api.js";
import { Failure } from "./failure.jsx";
import { STATUS_CLASS, column, fmtDuration, fmtNumber, fmtTime, href } from "./util.js";

const PAGE = 100; // rows fetched per request
const ROW_HEIGHT = 30;
const LIVE_MS = 5000; // the visible rows and the count are asked again this often (status changes, LOST runs)

// Rows are fetched a page at a time, by offset, for the pages the table shows; sorting and filtering are the server's.
function useRunPages(experiment, filter, orders) {
  const [state, setState] = useState({ count: null, error: null, version: 0 });
  const pages = useRef(new Map());
  const pending = useRef(new Set());
  const key = JSON.stringify([experiment, filter, orders]);
  const keyRef = useRef(key);
  keyRef.current = key;
  // the count depends on what is shown, not on its order: sorting asks only for rows
  const countKey = JSON.stringify([experiment, filter]);
  const countKeyRef = useRef(null);

  const args = () => ({ experiments: experiment ? [experiment] : null, filter: filter || null });
  const bump = (patch) => setState((s) => ({ ...s, ...patch, version: s.version + 1 }));

  const load = (index, refresh = false) => {
    if ((!refresh && pages.current.has(index)) || pending.current.has(index)) return;
    pending.current.add(index);
    const mine = key;
    call("search_page", { ...args(), order_by: orders.length ? orders : null, limit: PAGE, offset: index * PAGE })
      .then((page) => {
        if (keyRef.current !== mine) return;
        pages.current.set(index, page);
        bump({ error: null });
      })
      .catch((error) => keyRef.current === mine && bump({ error }))
      .finally(() => pending.current.delete(index));
  };

  const recount = () => {
    const mine = countKey;
    call("count_runs", args())
      .then((n) => countKeyRef.current === mine && bump({ count: n }))
      .catch((error) => countKeyRef.current === mine && bump({ error, count: null }));
  };

  useEffect(() => {
    pages.current = new Map();
    pending.current = new Set();
    const sameCount = countKeyRef.current === countKey;
    countKeyRef.current = countKey;
    setState((s) => ({ count: sameCount ? s.count : null, error: null, version: s.version + 1 }));
    load(0);
    if (!sameCount || state.count == null) recount();
  }, [key]);

  const row = (i) => {
    const page = pages.current.get(Math.floor(i / PAGE));
    if (!page) return null;
    const j = i % PAGE;
    if (j >= page.rows.length) return null;
    return { row: page.rows[j], params: page.params[j], metrics: page.metrics[j], tags: page.tags[j] };
  };

  // the keys of the experiment's newest and oldest runs (the server's sample), and of every row loaded since
  const [known, setKnown] = useState({ params: [], metrics: [], tags: [] });
  const shown = state.version > 0; // asked once the first rows are there: the keys are for completing, not for showing
  useEffect(() => {
    if (shown) call("run_keys", { experiments: experiment ? [experiment] : null }).then(setKnown, () => {});
  }, [experiment, shown]);
  const keys = useMemo(() => {
    const found = { metrics: new Set(known.metrics), params: new Set(known.params), tags: new Set(known.tags) };
    for (const page of pages.current.values()) {
      for (const kind of ["metrics", "params", "tags"]) for (const m of page[kind]) for (const k in m) found[kind].add(k);
    }
    return Object.fromEntries(Object.entries(found).map(([k, v]) => [k, [...v].sort()]));
  }, [state.version, key, known]);

  // rows show as soon as the first page arrives; the count (a query of its own) then sizes the table
  const first = pages.current.get(0);
  const size = state.count ?? (first ? first.rows.length : 0);
  return { ...state, size, row, load, recount, keys };
}

function useVirtualizer(count, scrollRef) {
  const [, rerender] = useState(0);
  const options = {
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 4,
    scrollToFn: elementScroll,
    observeElementRect,
    observeElementOffset,
    onChange: () => rerender((x) => x + 1),
  };
  const v = useMemo(() => new Virtualizer(options), []);
  v.setOptions({ ...v.options, ...options });
  useLayoutEffect(() => v._didMount(), []);
  useLayoutEffect(() => v._willUpdate());
  return v;
}

// Completion of params./metrics./tags. keys for the word at the cursor.
function suggestions(text, cursor, keys) {
  const before = text.slice(0, cursor);
  const m = /(?:^|[\s(])((metrics|params|tags)\.([A-Za-z0-9_.-]*))$/.exec(before);
  if (!m) return null;
  const [, word, prefix, part] = m;
  const options = (keys[prefix] || []).filter((k) => k.toLowerCase().startsWith(part.toLowerCase())).slice(0, 12);
  return options.length ? { start: cursor - word.length, prefix, options } : null;
}

function FilterBox({ value, onApply, keys, error }) {
  const [text, setText] = useState(value);
  const [hint, setHint] = useState(null);
  const input = useRef(null);
  useEffect(() => setText(value), [value]);
  const pick = (k) => {
    const cursor = input.current.selectionStart;
    const next = text.slice(0, hint.start) + column(hint.prefix, k) + " " + text.slice(cursor);
    setText(next);
    setHint(null);
    input.current.focus();
  };
  const position = error && error.details && typeof error.details.position === "number" ? error.details.position : null;
  return (
    <div class="filter">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setHint(null);
          onApply(text.trim());
        }}
      >
        <input
          ref={input}
          name="filter"
          aria-label="filter"
          spellcheck={false}
          autocomplete="off"
          placeholder="filter, e.g. metrics.auc > 0.8 and params.model = 'rf'"
          value={text}
          onInput={(e) => {
            setText(e.currentTarget.value);
            setHint(suggestions(e.currentTarget.value, e.currentTarget.selectionStart, keys));
          }}
          onKeyDown={(e) => {
            if (hint && (e.key === "Tab" || (e.key === "Enter" && hint.options.length === 1))) {
              e.preventDefault();
              pick(hint.options[0]);
            } else if (e.key === "Escape") setHint(null);
          }}
        />
        <button type="submit">Search</button>
      </form>
      {hint ? (
        <ul class="hints" role="listbox">
          {hint.options.map((k) => (
            <li key={k} role="option" onMouseDown={(e) => (e.preventDefault(), pick(k))}>
              {hint.prefix}.{k}
            </li>
          ))}
        </ul>
      ) : null}
      {error ? (
        <div class="filter-error" role="alert">
          {position != null ? (
            <code class="where">
              {error.details.expression.slice(0, position)}
              <mark>{error.details.expression.slice(position) || " "}</mark>
            </code>
          ) : null}
          <span>{error.message}</span>
        </div>
      ) : null}
    </div>
  );
}

const FIXED = [
  { id: "name", label: "Run", sort: "name", width: 220 },
  { id: "status", label: "Status", sort: "status", width: 90 },
  { id: "experiment", label: "Experiment", sort: "experiment", width: 130 },
  { id: "start", label: "Started (UTC)", sort: "start_time", width: 160 },
  { id: "duration", label: "Duration", sort: null, width: 80 },
];

function cell(col, r) {
  if (col.id === "name") return <a href={href("run", [r.row[ROW.id]])}>{r.row[ROW.name] || r.row[ROW.id].slice(0, 8)}</a>;
  if (col.id === "status") return <span class={"status " + (STATUS_CLASS[r.row[ROW.status]] || "")}>{r.row[ROW.status]}</span>;
  if (col.id === "experiment") return r.row[ROW.experiment];
  if (col.id === "start") return fmtTime(r.row[ROW.start]);
  if (col.id === "duration") return fmtDuration(r.row[ROW.start], r.row[ROW.end]);
  if (col.kind === "metrics") return fmtNumber(r.metrics[col.key]);
  return r[col.kind][col.key] ?? "";
}

export function RunsPage({ query }) {
  const experiment = query.get("experiment") || "";
  const filter = query.get("filter") || "";
  const order = query.get("order") || "";
  const group = query.get("group") || "";
  const go = (patch) => {
    const next = { experiment, filter, order, group, ...patch };
    location.hash = href("runs", [], next);
  };
  const [experiments, setExperiments] = useState([]);
  const [expError, setExpError] = useState(null);
  useEffect(() => {
    call("list_experiments", { counts: false }).then(setExperiments, setExpError);
  }, []);

  // grouping orders by the group's column first, then by the chosen order: each group's runs are together
  const data = useRunPages(experiment, filter, [group && `${group} ASC`, order].filter(Boolean));

  const [hidden, setHidden] = useState(() => new Set(JSON.parse(localStorage.getItem("modelcycle.hidden") || "[]")));
  const toggle = (id) => {
    const next = new Set(hidden);
    next.has(id) ? next.delete(id) : next.add(id);
    setHidden(next);
    localStorage.setItem("modelcycle.hidden", JSON.stringify([...next]));
  };
  const dynamic = [
    ...data.keys.metrics.map((k) => ({ id: `metrics.${k}`, kind: "metrics", key: k })),
    ...data.keys.params.map((k) => ({ id: `params.${k}`, kind: "params", key: k })),
    ...data.keys.tags.map((k) => ({ id: `tags.${k}`, kind: "tags", key: k })),
  ].map((c) => ({ ...c, label: c.id, sort: column(c.kind, c.key), width: 120 }));
  const tagDefault = (c) => c.kind === "tags" && !hidden.has("+" + c.id); // tags start hidden; "+id" shows one
  const visible = (c) => !hidden.has(c.id) && !tagDefault(c);
  const toggleColumn = (c) => (c.kind === "tags" ? toggle("+" + c.id) : toggle(c.id));
  const columns = [...FIXED.filter((c) => !hidden.has(c.id)), ...dynamic.filter(visible)];
  const width = 36 + columns.reduce((a, c) => a + c.width, 0);

  const scroll = useRef(null);
  const v = useVirtualizer(data.size, scroll);
  const items = v.getVirtualItems();
  useEffect(() => {
    if (!items.length) return;
    const first = Math.floor(items[0].index / PAGE);
    const last = Math.floor(items[items.length - 1].index / PAGE);
    for (let p = first; p <= last; p++) data.load(p);
  });
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.hidden) return;
      const shown = v.getVirtualItems();
      if (!shown.length) return;
      data.recount();
      const first = Math.floor(shown[0].index / PAGE);
      const last = Math.floor(shown[shown.length - 1].index / PAGE);
      for (let p = first; p <= last; p++) data.load(p, true);
    }, LIVE_MS);
    return () => clearInterval(timer);
  });

  const [selected, setSelected] = useState(() => new Set());
  const select = (id) => {
    const next = new Set(selected);
    next.has(id) ? next.delete(id) : next.add(id);
    setSelected(next);
  };
  const sortBy = (c) => {
    if (!c.sort) return;
    const [cur, dir] = order.split(/ (?=ASC$|DESC$)/);
    const next = cur !== c.sort ? `${c.sort} DESC` : dir === "DESC" ? `${c.sort} ASC` : "";
    go({ order: next });
  };
  const groupValue = (r) => {
    if (!group || !r) return null;
    const [kind, ...rest] = group.split(".");
    const k = rest.join(".").replace(/^`|`$/g, "");
    return r[kind]?.[k] ?? "(none)";
  };

  return (
    <section class="runs">
      <div class="toolbar">
        <label>
          Experiment{" "}
          <select aria-label="experiment" value={experiment} onChange={(e) => go({ experiment: e.currentTarget.value })}>
            <option value="">all experiments</option>
            {experiments.map((x) => (
              <option key={x.id} value={x.name}>
                {x.name}
              </option>
            ))}
          </select>
        </label>
        <FilterBox value={filter} onApply={(f) => go({ filter: f })} keys={data.keys} error={data.error?.code === "FilterSyntaxError" || data.error?.code === "InvalidInputError" ? data.error : null} />
        <label>
          Group by{" "}
          <select aria-label="group by" value={group} onChange={(e) => go({ group: e.currentTarget.value })}>
            <option value="">nothing</option>
            {dynamic
              .filter((c) => c.kind !== "metrics")
              .map((c) => (
                <option key={c.id} value={c.sort}>
                  {c.id}
                </option>
              ))}
          </select>
        </label>
        <details class="columns">
          <summary>Columns</summary>
          <div class="column-list">
            {[...FIXED.slice(1), ...dynamic].map((c) => (
              <label key={c.id}>
                <input type="checkbox" checked={c.kind ? visible(c) : !hidden.has(c.id)} onChange={() => (c.kind ? toggleColumn(c) : toggle(c.id))} /> {c.label}
              </label>
            ))}
          </div>
        </details>
        <a
          class={"button" + (selected.size < 2 ? " disabled" : "")}
          aria-disabled={selected.size < 2}
          href={selected.size >= 2 ? href("compare", [], { ids: [...selected].join(",") }) : undefined}
        >
          Compare {selected.size || ""}
        </a>
        <span class="count" data-testid="count">
          {data.count == null ? (data.error ? "" : "…") : `${data.count.toLocaleString("en")} runs`}
        </span>
      </div>
      {expError ? (
        <Failure error={expError} />
      ) : data.error && data.error.code !== "FilterSyntaxError" && data.error.code !== "InvalidInputError" ? (
        <Failure error={data.error} />
      ) : null}
      <div class="table" ref={scroll} data-testid="runs-table">
        <div class="thead" style={{ width: `${width}px` }}>
          <div class="cell check" />
          {columns.map((c) => (
            <div
              key={c.id}
              class={"cell" + (c.sort ? " sortable" : "") + (order.startsWith(c.sort + " ") ? " sorted" : "")}
              style={{ width: `${c.width}px` }}
              title={c.label}
              onClick={() => sortBy(c)}
            >
              {c.label}
              {c.sort && order === `${c.sort} DESC` ? " ▼" : c.sort && order === `${c.sort} ASC` ? " ▲" : ""}
            </div>
          ))}
        </div>
        <div class="tbody" style={{ height: `${v.getTotalSize()}px`, width: `${width}px` }}>
          {items.map((it) => {
            const r = data.row(it.index);
            const gv = groupValue(r);
            const prev = it.index > 0 ? groupValue(data.row(it.index - 1)) : null;
            const starts = group && r && (it.index === 0 || gv !== prev);
            return (
              <div
                key={it.key}
                class={"tr" + (starts ? " group-start" : "") + (r && selected.has(r.row[ROW.id]) ? " selected" : "")}
                data-index={it.index}
                style={{ transform: `translateY(${it.start}px)`, height: `${ROW_HEIGHT}px` }}
              >
                {r ? (
                  <>
                    <div class="cell check">
                      <input type="checkbox" aria-label="select run" checked={selected.has(r.row[ROW.id])} onChange={() => select(r.row[ROW.id])} />
                    </div>
                    {columns.map((c) => (
                      <div key={c.id} class="cell" style={{ width: `${c.width}px` }}>
                        {c.id === "name" && starts ? <span class="group-label">{gv}</span> : null}
                        {cell(c, r)}
                      </div>
                    ))}
                  </>
                ) : (
                  <div class="cell loading">…</div>
                )}
              </div>
            );
          })}
        </div>
        {data.count === 0 ? <p class="empty">No runs match.</p> : null}
      </div>
    </section>
  );
}
