import { Component, render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { getToken, me, setToken } from "./api.js";
import { parseHash } from "./util.js";
import { RunsPage } from "./runs.jsx";

// The runs page is in the first script; every other page (and the chart and graph libraries) loads when first shown.
const PAGES = {
  run: () => import("./run.jsx").then((m) => m.RunPage),
  compare: () => import("./compare.jsx").then((m) => m.ComparePage),
  models: () => import("./models.jsx").then((m) => m.ModelsPage),
  model: () => import("./models.jsx").then((m) => m.ModelPage),
  pipelines: () => import("./pipeline.jsx").then((m) => m.PipelinesPage),
  pipeline: () => import("./pipeline.jsx").then((m) => m.PipelinePage),
  productionIndex: () => import("./production.jsx").then((m) => m.ProductionIndex),
  production: () => import("./production.jsx").then((m) => m.ProductionPage),
};
const loaded = {};

function Lazy({ page, ...props }) {
  const [, setReady] = useState(0);
  const Page = loaded[page];
  useEffect(() => {
    if (!Page) PAGES[page]().then((C) => ((loaded[page] = C), setReady((x) => x + 1)));
  }, [page]);
  return Page ? <Page {...props} /> : <p class="muted">loading…</p>;
}

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return parseHash(hash);
}

// A page that fails to draw what it was given says so, instead of leaving the screen blank.
class Boundary extends Component {
  componentDidCatch(error) {
    this.setState({ error });
  }
  render({ children }, { error }) {
    if (!error) return children;
    return (
      <div class="error" role="alert">
        This page could not show what the server answered ({String(error.message || error)}). The records it reads may
        have been written by a client modelcycle does not know; other pages are unaffected.
      </div>
    );
  }
}

function Who() {
  const [who, setWho] = useState(null);
  useEffect(() => {
    me().then(setWho);
  }, []);
  return who && who.signed_in ? <span class="muted" data-testid="who">{who.name}</span> : null;
}

function App() {
  const { page, args, query } = useHash();
  let body;
  if (page === "run" && args[0]) body = <Lazy page="run" id={args[0]} key={args[0]} />;
  else if (page === "compare") body = <Lazy page="compare" ids={(query.get("ids") || "").split(",").filter(Boolean)} metric={query.get("metric") || ""} param={query.get("param") || ""} />;
  else if (page === "models" && args[0]) body = <Lazy page="model" name={args[0]} key={args[0]} />;
  else if (page === "models") body = <Lazy page="models" />;
  else if (page === "pipeline" && args[0]) body = <Lazy page="pipeline" id={args[0]} key={args[0]} />;
  else if (page === "pipelines") body = <Lazy page="pipelines" />;
  else if (page === "production" && args[0]) body = <Lazy page="production" name={args[0]} range={query.get("range")} key={args[0]} />;
  else if (page === "production") body = <Lazy page="productionIndex" />;
  else body = <RunsPage query={query} />;
  return (
    <>
      <header>
        <a class="brand" href="#/runs">
          modelcycle
        </a>
        <nav>
          <a href="#/runs" class={page === "runs" || page === "run" || page === "compare" ? "active" : ""}>
            Runs
          </a>
          <a href="#/pipelines" class={page === "pipelines" || page === "pipeline" ? "active" : ""}>
            Pipelines
          </a>
          <a href="#/models" class={page === "models" ? "active" : ""}>
            Models
          </a>
          <a href="#/production" class={page === "production" ? "active" : ""}>
            Production
          </a>
        </nav>
        <Who />
        {getToken() ? (
          <button
            class="link"
            onClick={() => {
              setToken("");
              location.reload();
            }}
          >
            Sign out
          </button>
        ) : null}
      </header>
      <main>
        <Boundary key={location.hash}>{body}</Boundary>
      </main>
    </>
  );
}

render(<App />, document.getElementById("app"));
