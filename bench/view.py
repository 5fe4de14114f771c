"""How fast ``peerstep view`` writes and a browser draws a large run.

Synthetic leap runs of 100, 1,000 and 10,000 steps (8 trajectories; a barrier every 5 steps per trajectory with a
summary and two peer injections each; replies of ~400 characters, tool calls with results) are written with
StepLog + StepRecord in a temp dir. For each: the time ``render_run`` takes (read, model, HTML) and the file's size,
then the page in headless Chromium (Debian's, through tests/_browser.py): DOMContentLoaded (the inline script has
drawn every column by then) and first paint, from the Performance API. Goals: 10,000 steps render in < 2 s and
first paint in < 1 s.

    .venv/bin/python bench/view.py [--sizes 100,1000,10000] [--trajectories 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peerstep.steplog import StepKind, StepLog, StepRecord, ToolInfo, Usage
from peerstep.view import render_run
from tests._browser import chromium, file_url

REPLY = ("Let me work this out step by step. The cost is split in half, so the missing amount is the cost minus "
         "what James has minus the half the association covers. ") * 3


def synthetic_run(directory: Path, steps: int, n: int) -> StepLog:
    """A finished leap-like run with about ``steps`` step records across ``n`` trajectories."""
    log = StepLog.create(meta={"strategy": "leap", "n": n, "question": "How much is James missing?", "gold": "170",
                               "status": "done"}, directory=directory)
    rid = log.run_id
    last: dict[int, str] = {}
    written, rnd = 0, 0
    for tid in range(n):
        last[tid] = log.append(StepRecord(run_id=rid, trajectory_id=tid, kind=StepKind.RUN_START, text="q")).step_id
    while written < steps:
        for tid in range(n):
            for i in range(5):
                kind = StepKind.REASON if i % 2 == 0 else StepKind.TOOL_CALL
                if kind == StepKind.REASON:
                    rec = StepRecord(run_id=rid, trajectory_id=tid, kind=kind, parent_id=last[tid],
                                     text=f"[{tid}.{rnd}.{i}] {REPLY}", usage=Usage(prompt_tokens=300,
                                                                                  completion_tokens=90))
                else:
                    rec = StepRecord(run_id=rid, trajectory_id=tid, kind=kind, parent_id=last[tid],
                                     tool=ToolInfo(name="python", arguments={"code": f"print(660 - 330 - {i})"},
                                                   call_id=f"c{tid}-{rnd}-{i}", output=str(330 - i), ok=True))
                last[tid] = log.append(rec).step_id
                written += 1
        rnd += 1
        log.log(StepKind.BARRIER, trajectory_id=-1, data={"round": rnd, "active": list(range(n)), "finished": []})
        for tid in range(n):
            last[tid] = log.log(StepKind.SUMMARY, trajectory_id=tid, parent_id=last[tid],
                                text=f"T{tid} thinks the answer is {330 + tid % 3}").step_id
        for tid in range(n):
            sources = [(tid + 1) % n, (tid + 2) % n]
            last[tid] = log.log(StepKind.PEER_INJECT, trajectory_id=tid, parent_id=last[tid], text="<comment>…",
                                data={"router": "dispersed", "round": rnd, "top_k": 2, "sources": sources,
                                      "similarities": [0.31, 0.42]}).step_id
        written += 2 * n
    for tid in range(n):
        log.log(StepKind.FINAL, trajectory_id=tid, parent_id=last[tid], text=str(330 + tid % 3), reward=0.0,
                data={"gold": "170"})
    log.log(StepKind.AGGREGATE, trajectory_id=-1, text="330", data={
        "decision": {"answer": "330", "method": "majority", "support": 3, "total": n,
                     "groups": [["330", list(range(0, n, 3)), 3.0]]}, "gold": "170", "correct": False})
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--trajectories", type=int, default=8)
    args = parser.parse_args()
    print("| steps | records | render (s) | HTML (MB) | DOMContentLoaded (ms) | first paint (ms) |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp, chromium(width=1400, height=900) as driver:
        for size in (int(s) for s in args.sizes.split(",")):
            log = synthetic_run(Path(tmp), size, args.trajectories)
            records = log.count()
            log.close()
            start = time.perf_counter()
            page = render_run(str(log.path), out=Path(tmp) / f"{size}.html")
            render_s = time.perf_counter() - start
            driver.get(file_url(page))
            time.sleep(0.5)  # paint entries are recorded after the frame is presented
            dcl, paint, shown, drawn = driver.execute_script(
                "var n = performance.getEntriesByType('navigation')[0];"
                "var p = performance.getEntriesByType('paint').filter(function (e) {"
                "  return e.name === 'first-contentful-paint' || e.name === 'first-paint'; })[0];"
                "return [n.domContentLoadedEventEnd, p ? p.startTime : null, window.peerstepView.shownAt,"
                "        document.querySelectorAll('.step').length];")
            first = paint if paint is not None else shown  # headless Chromium may not report paint entries
            source = "paint entry" if paint is not None else "first frame after drawing"
            print(f"| {size:,} | {records:,} | {render_s:.2f} | {page.stat().st_size / 1e6:.2f} | {dcl:.0f} | "
                  f"{first:.0f} ({source}) |  {drawn:,} step elements drawn", flush=True)


if __name__ == "__main__":
    main()
