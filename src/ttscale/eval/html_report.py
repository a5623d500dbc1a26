"""report.html: one self-contained page of an evaluation (overview, problem table, each problem's search).

Everything is inline (plotly.js too), so the page opens offline. A run of 500 problems x 256 candidates
holds about a million tree nodes; parsing them all when the page opens would freeze it, so each
problem's payload (per run) sits in its own script block, gzipped and base64-encoded, that the page
parses only when that problem is opened (bench/html_report.py measures size and load time).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from ttscale.config import SearchConfig
from ttscale.data.outputs import writing
from ttscale.data.results import read_trees
from ttscale.errors import RunDirError
from ttscale.eval.evaluate import Run, evaluate_loaded, load_run
from ttscale.eval.html_overview import overview_figures, overview_html
from ttscale.eval.html_trees import STATES, problem_payload
from ttscale.eval.records import Evaluation
from ttscale.types import TreeNode

log = logging.getLogger(__name__)

HTML_REPORT = "report.html"
# The page says who wrote it, so `ttscale view` overwrites its own page and never someone else's file.
GENERATOR = '<meta name="generator" content="ttscale report">'


@dataclass(frozen=True)
class Shown:
    """A run as the page shows it: its label and its trees (empty when it saved none)."""

    run: Run
    label: str
    trees: dict[str, list[TreeNode]]

    @property
    def selection(self) -> str:
        return str(self.run.search.get("selection", SearchConfig.selection))


def shown_runs(runs: Sequence[Run]) -> list[Shown]:
    names = [r.path.name or str(r.path) for r in runs]
    out = []
    for run, name in zip(runs, names):
        name = name if names.count(name) == 1 else str(run.path)
        try:
            trees = read_trees(run.path)
        except RunDirError:  # no trees.jsonl: the run was made without output.save_trees
            trees = {}
        out.append(Shown(run, f"{name} · {run.strategy} N={run.n}", trees))
    return out


def _json(obj: Any) -> str:
    """JSON that is safe inside a <script> element: no '<' can close it, and ASCII only, so a lone
    surrogate read from a damaged file is an escape, not a write error."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")


def _packed(obj: Any) -> str:
    # mtime=0: the same run writes the same page
    return base64.b64encode(gzip.compress(_json(obj).encode("ascii"), compresslevel=6, mtime=0)).decode("ascii")


def _table_rows(shown: Sequence[Shown]) -> list[dict[str, Any]]:
    """One row per problem (the first run's order, then any only later runs hold): what the table sorts and
    filters. Per run: [answer, right, pass@N, tokens, failed], or null where the run lacks the problem."""
    by_id = [{r.id: r for r in s.run.results} for s in shown]
    ids = list(dict.fromkeys(r.id for s in shown for r in s.run.results))
    rows = []
    for pid in ids:
        p = next(m[pid].problem for m in by_id if pid in m)
        cells: list[list[Any] | None] = []
        for s, m in zip(shown, by_id):
            r = m.get(pid)
            if r is None:
                cells.append(None)
                continue
            ok = s.run.correct[pid]
            pick = r.completions[r.selected].answer if r.selected is not None and r.error is None else None
            right = r.error is None and r.selected is not None and ok[r.selected]
            cells.append([pick, bool(right), any(ok), r.budget.generated_tokens, r.error is not None])
        rows.append({"id": pid, "level": p.level, "subject": p.subject, "question": p.question, "gold": p.answer,
                     "runs": cells})
    return rows


def _blocks(shown: Sequence[Shown], rows: Sequence[dict[str, Any]]) -> list[str]:
    by_id = [{r.id: r for r in s.run.results} for s in shown]
    out = []
    for i, row in enumerate(rows):
        for j, (s, m) in enumerate(zip(shown, by_id)):
            r = m.get(row["id"])
            if r is None:
                continue
            payload = problem_payload(r, s.run.correct[r.id], s.trees.get(r.id), s.selection, s.run.reduction)
            out.append(f'<script type="application/octet-stream" id="p{i}r{j}">{_packed(payload)}</script>')
    return out


def _asset(name: str) -> str:
    return resources.files("ttscale.eval").joinpath("assets", name).read_text(encoding="utf-8")


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def build_page(ev: Evaluation, shown: Sequence[Shown]) -> str:
    """The whole page as one string."""
    rows = _table_rows(shown)
    data = {"runs": [{"label": s.label, "strategy": s.run.strategy, "n": s.run.n, "trees": bool(s.trees)}
                     for s in shown], "states": list(STATES), "problems": rows}
    title = "ttscale report: " + ", ".join(s.label for s in shown)
    parts = {
        "GENERATOR": GENERATOR,
        "TITLE": escape(title),
        "CSS": _asset("report.css"),
        "PLOTLY": _plotly_js().replace("</script", "<\\/script"),
        "OVERVIEW": overview_html(ev, [s.label for s in shown]),
        "DATA": _json(data),
        "FIGURES": _json(overview_figures(ev)),
        "BLOCKS": "\n".join(_blocks(shown, rows)),
        "JS": _asset("report.js"),
    }
    # one pass over the template: a question that spells a placeholder stays text
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], _asset("report.html"))


def write_page(ev: Evaluation, runs: Sequence[Run], path: Path) -> Path:
    """Write the page to `path` whole (a reader never sees half of it)."""
    page = build_page(ev, shown_runs(runs))
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    return path


def _claim_page(output: Path, inputs: Sequence[Path]) -> None:
    """`view` writes a file, never into a run folder it reads, and over no file but an earlier page of its own."""
    if output.is_dir():
        raise RunDirError(f"--output {output} is a folder; name the page's file, e.g. {output / HTML_REPORT}")
    parent = output.resolve().parent
    for d in inputs:
        d = d.resolve()
        if parent == d or d in parent.parents:
            raise RunDirError(f"--output {output} is inside the input {d}; write the page elsewhere")
    if output.exists():
        with writing(output), output.open("rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
        if GENERATOR not in head:
            raise RunDirError(f"--output {output} exists and is not a ttscale report; choose another file")
    with writing(output.parent):
        output.parent.mkdir(parents=True, exist_ok=True)


def view(paths: Sequence[str | Path], output: str | Path, seeds: int = 8) -> Path:
    """Evaluate run folders in memory and write their page to `output` (`ttscale view`)."""
    out = Path(output)
    _claim_page(out, [Path(p) for p in paths])
    runs = [load_run(p) for p in paths]
    return write_page(evaluate_loaded(runs, seeds=seeds), runs, out)


def serve(page: Path, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for the one page (at / and at its name), nothing else of its folder; the caller runs it."""
    body = page.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] not in ("/", f"/{page.name}"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)
