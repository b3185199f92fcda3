// Formatting and the hash routes. Everything shown goes through Preact's text nodes (escaped); nothing is set as HTML.

export function fmtTime(t) {
  const d = typeof t === "number" ? new Date(t * 1000) : null;
  return d && !Number.isNaN(d.getTime()) ? d.toISOString().replace("T", " ").slice(0, 19) : "";
}

export function fmtDuration(start, end) {
  if (typeof start !== "number" || typeof end !== "number") return "";
  const s = end - start;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function fmtNumber(v) {
  if (v == null) return "";
  if (typeof v !== "number") return typeof v === "string" ? v : JSON.stringify(v) ?? String(v); // NaN, Infinity; or not a number at all
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-4 || a >= 1e6) ? v.toExponential(4) : String(Number(v.toPrecision(6)));
}

// A key as the filter language names it: plain, or in backticks when it holds other characters.
export const quoteKey = (key) => (/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key) ? key : "`" + key.replace(/`/g, "") + "`");
export const column = (prefix, key) => (prefix ? `${prefix}.${quoteKey(key)}` : key);

// #/runs?experiment=a&filter=…  #/run/<id>  #/compare?ids=a,b  #/models  #/models/<name>
export function parseHash(hash) {
  const h = hash.replace(/^#\/?/, "");
  const [path, query = ""] = h.split("?", 2);
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { page: parts[0] || "runs", args: parts.slice(1), query: new URLSearchParams(query) };
}

export function href(page, args = [], query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v != null && v !== "")).toString();
  return `#/${[page, ...args.map(encodeURIComponent)].join("/")}${q ? "?" + q : ""}`;
}

export const STATUS_CLASS = { RUNNING: "st-running", FINISHED: "st-finished", FAILED: "st-failed", KILLED: "st-killed", LOST: "st-lost" };

// A mapping keyed by what users name (steps, columns, runs): no inherited keys.
export const dict = () => Object.create(null);

// Any value as text (what a hostile client stored where text belongs may be a number, a list or an object).
export const text = (v) => (v == null ? "" : typeof v === "string" ? v : typeof v === "number" ? fmtNumber(v) : JSON.stringify(v) ?? String(v));
