"""Does the closed loop close every time on a loaded machine? ``modelcycle demo``'s loop, run N times.

Run from the repository root (it needs modelcycle with its ``[demo]`` extra: ``.venv`` or ``.venv-bench``)::

    .venv/bin/python bench/demo_loop.py                 # 10 runs, one CPU-burning process beside each (~15 min)
    .venv/bin/python bench/demo_loop.py --runs 3 --burners 0
    .venv/bin/python bench/demo_loop.py --json bench/results/demo_loop.json

Each run is a fresh process with a fresh store (``MODELCYCLE_HOME`` in a temporary folder, capture
off), running ``modelcycle.demo.loop.main`` exactly as ``modelcycle demo`` does, while ``--burners``
processes spin a CPU each (on a 2-core machine one burner takes half of it). For each run it
reports whether the loop closed (drift detected, a candidate promoted after the change, the server
answering with it, live ROC AUC back above the policy's 0.75), the wall time of the whole demo, the
time from the change to the first drift or performance alert (to detect) and to the first promotion
after it (to promote), the number of cycles after the change, and the live ROC AUC before the
change, after it under the old model, and under the model serving at the end (means over windows
with enough labels). Then the medians, and how many runs closed.

There is no other tool to run side by side: no tool we measure ourselves against closes this loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE = r"""
import json, sys, time
import modelcycle as mc
from modelcycle.demo import loop

started = time.time()
try:
    out = loop.main()
    closed, why = True, None
except loop.DemoFailed as e:
    out, closed, why = e.result, False, str(e)
wall = time.time() - started
client = mc.get_client()
drift_at = out.get("drift_at") or 0
alerts = [a for a in client.store.alert_list(None, 200) if a.rule in ("drift", "performance") and a.raised_at > drift_at]
retrains = [c for c in out.get("cycles", []) if c.trigger in ("drift", "performance") and c.started_at > drift_at]
promoted = [c for c in retrains if c.state == "done"]
mean = lambda xs: sum(xs) / len(xs) if xs else None
print("RESULT " + json.dumps({
    "closed": closed, "why": why, "wall_s": wall,
    "detect_s": min(a.raised_at for a in alerts) - drift_at if alerts and drift_at else None,
    "promote_s": min(c.finished_at for c in promoted) - drift_at if promoted and drift_at else None,
    "cycles_after_change": len(retrains), "states": [str(c.state) for c in sorted(retrains, key=lambda c: c.started_at)],
    "auc_before": mean(out.get("before", [])), "auc_during": mean(out.get("during", [])), "auc_after": mean(out.get("after", [])),
}))
"""


def run_once(python: str, burners: int) -> dict:
    spinners = [subprocess.Popen([python, "-c", "while True: pass"]) for _ in range(burners)]
    try:
        with tempfile.TemporaryDirectory(prefix="mc-demo-bench-") as home:
            env = {**os.environ, "MODELCYCLE_HOME": home, "MODELCYCLE_CAPTURE": "0"}
            proc = subprocess.run([python, "-c", ONE], env=env, capture_output=True, text=True, timeout=900, cwd=home)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"closed": False, "why": f"the demo process exited {proc.returncode}: {proc.stderr.strip()[-500:]}", "wall_s": None}
    return json.loads(line[len("RESULT "):])


def _fmt(value: object, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--burners", type=int, default=1, help="CPU-burning processes beside each run (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    print(f"closed loop, {args.runs} runs, {args.burners} CPU burner(s) beside each, {os.cpu_count()} CPUs")
    print(f"{'run':>3}  {'closed':>6}  {'wall s':>6}  {'detect s':>8}  {'promote s':>9}  {'cycles':>6}  "
          f"{'AUC before':>10}  {'during':>6}  {'after':>6}  states")
    for i in range(args.runs):
        r = run_once(sys.executable, args.burners)
        results.append(r)
        print(f"{i + 1:>3}  {'yes' if r['closed'] else 'NO':>6}  {_fmt(r.get('wall_s')):>6}  {_fmt(r.get('detect_s')):>8}  "
              f"{_fmt(r.get('promote_s')):>9}  {r.get('cycles_after_change', '—'):>6}  {_fmt(r.get('auc_before'), '.3f'):>10}  "
              f"{_fmt(r.get('auc_during'), '.3f'):>6}  {_fmt(r.get('auc_after'), '.3f'):>6}  {','.join(r.get('states', []))}",
              flush=True)
        if not r["closed"]:
            print(f"     why: {r['why']}", flush=True)

    def med(key: str) -> float | None:
        values = [r[key] for r in results if r.get(key) is not None]
        return statistics.median(values) if values else None

    closed = sum(r["closed"] for r in results)
    print(f"\nclosed {closed}/{len(results)}; medians: wall {_fmt(med('wall_s'))} s, to detect {_fmt(med('detect_s'))} s, "
          f"to promote {_fmt(med('promote_s'))} s, ROC AUC before {_fmt(med('auc_before'), '.3f')}, during "
          f"{_fmt(med('auc_during'), '.3f')}, after {_fmt(med('auc_after'), '.3f')}")
    print(f"target: {len(results)}/{len(results)} closed and median wall time under 150 s: "
          f"{'met' if closed == len(results) and (med('wall_s') or 1e9) < 150 else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": results, "burners": args.burners, "at": time.time()}, indent=2))


if __name__ == "__main__":
    main()
