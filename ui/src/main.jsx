import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { getToken, setToken } from "./api.js";
import { parseHash } from "./util.js";
import { RunsPage } from "./runs.jsx";
import { RunPage } from "./run.jsx";
import { ComparePage } from "./compare.jsx";
import { ModelsPage, ModelPage } from "./models.jsx";
import { PipelinesPage, PipelinePage } from "./pipeline.jsx";
import { ProductionIndex, ProductionPage } from "./production.jsx";

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return parseHash(hash);
}

function App() {
  const { page, args, query } = useHash();
  let body;
  if (page === "run" && args[0]) body = <RunPage id={args[0]} />;
  else if (page === "compare") body = <ComparePage ids={(query.get("ids") || "").split(",").filter(Boolean)} />;
  else if (page === "models" && args[0]) body = <ModelPage name={args[0]} />;
  else if (page === "models") body = <ModelsPage />;
  else if (page === "pipeline" && args[0]) body = <PipelinePage id={args[0]} />;
  else if (page === "pipelines") body = <PipelinesPage />;
  else if (page === "production" && args[0]) body = <ProductionPage name={args[0]} range={query.get("range")} />;
  else if (page === "production") body = <ProductionIndex />;
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
      <main>{body}</main>
    </>
  );
}

render(<App />, document.getElementById("app"));
