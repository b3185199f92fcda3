// The server's public API, as every modelcycle client uses it: POST /api/v1/store/<call> with the call's arguments,
// blobs by their sha256, and the registry's promote/rollback routes. A token (when the server needs one) is kept for
// this browser tab only.

const TOKEN = "modelcycle.token";

export const getToken = () => sessionStorage.getItem(TOKEN) || "";
export const setToken = (t) => (t ? sessionStorage.setItem(TOKEN, t) : sessionStorage.removeItem(TOKEN));

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const headers = (json) => {
  const h = {};
  const t = getToken();
  if (t) h.Authorization = `Bearer ${t}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
};

// The server writes NaN and infinities as JSON's non-standard constants; they become the strings "NaN",
// "Infinity", "-Infinity" here (strings inside the document are left as they are).
const NON_FINITE = /"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g;
// Objects come back without a prototype: a key a user chose ("constructor", "__proto__", "toString") is only ever
// one of their own keys, never something every object inherits.
// Done as one walk after parsing: a reviver is a call per value, and a comparison's histories hold 100,000s of them.
const bare = (v) => {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (v[i] && typeof v[i] === "object") v[i] = bare(v[i]);
    return v;
  }
  const o = Object.create(null);
  for (const k of Object.keys(v)) o[k] = v[k] && typeof v[k] === "object" ? bare(v[k]) : v[k];
  return o;
};
export const parse = (text) => {
  const v = JSON.parse(/NaN|Infinity/.test(text) ? text.replace(NON_FINITE, (m, lit) => (lit ? `"${lit}"` : m)) : text);
  return v && typeof v === "object" ? bare(v) : v;
};

async function answer(r) {
  const text = await r.text();
  if (!r.ok) {
    let e = null;
    try {
      e = JSON.parse(text).error;
    } catch {
      /* not our error shape */
    }
    throw new ApiError(r.status, e?.code || String(r.status), e?.message || text.slice(0, 300) || r.statusText, e?.details);
  }
  return text ? parse(text) : null;
}

// A search answered 429 (this user already has as many running as the server allows: other tabs, a script) is asked
// again after the wait the server names, for up to a minute.
export async function call(name, args = {}) {
  const body = JSON.stringify(args);
  for (let waited = 0; ; ) {
    const r = await fetch(`/api/v1/store/${name}`, { method: "POST", headers: headers(true), body });
    if (r.status !== 429 || waited > 60) return (await answer(r)).value;
    const wait = Math.min(Math.max(Number(r.headers.get("Retry-After")) || 1, 0.05), 5) * (0.5 + Math.random());
    await new Promise((ok) => setTimeout(ok, wait * 1000));
    waited += wait;
  }
}

export async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  return answer(r);
}

export async function blob(digest) {
  if (!/^[0-9a-f]{64}$/.test(digest)) throw new ApiError(400, "InvalidInputError", `not a digest: ${digest}`);
  const r = await fetch(`/api/v1/blobs/${digest}`, { headers: headers(false) });
  if (!r.ok) await answer(r);
  return r.blob();
}

// PAGE_FIELDS of a search page's rows
export const ROW = { id: 0, experimentId: 1, name: 2, status: 3, start: 4, end: 5, heartbeat: 6, parent: 7, reproduces: 8, experiment: 9 };

// Who the token names and its roles (GET /api/v1/me), asked once per page load.
let whoami = null;
export function me() {
  if (!whoami) {
    whoami = fetch("/api/v1/me", { headers: headers(false) }).then(answer).catch(() => ({ name: null, admin: false, signed_in: false, roles: {} }));
  }
  return whoami;
}

const LEVEL = { read: 1, write: 2, manage: 3 };
export function can(who, kind, name, role) {
  if (!who) return false;
  if (who.admin) return true;
  const level = Math.max(LEVEL[who.roles[`${kind}:${name}`]] || 0, LEVEL[who.roles[`${kind}:*`]] || 0);
  return level >= LEVEL[role];
}
