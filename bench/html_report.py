"""report.html at scale: page size, build time and load time in headless Chromium for synthetic beam-search runs.

    python bench/html_report.py [--sizes 60x16 500x256] [--no-browser]

Each size PxN is a beam-search run of P problems with N beams (beam width 4, so N/4 beams survive a
round and each grows 4 children; a beam finishes with a probability that rises with depth, up to 10
rounds) written as a real run folder (config.yaml, completions.jsonl, trees.jsonl) and shown with
`ttscale view`. Steps are arithmetic sentences with random numbers, about 60 characters, so they
compress about as well as short solution steps do; long LaTeX steps make a larger page.

Rows (ours against the baseline named in the row):
  page MB             the page, against the run's completions.jsonl + trees.jsonl
  build s             writing the page (evaluation included), against the evaluation alone
  first load s        Chromium's load event in a fresh browser, against the page loaded again (V8 keeps
                      plotly.js compiled), the median of 3 as every later load row
  load s              Chromium's load event (plotly.js parsed, overview drawn), against the same page
                      with every problem's block decoded and parsed at load, as a page without
                      on-demand trees would, and against a page of plotly.js alone
  open tree s         click on the problem with the largest tree until it is drawn, against load
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from _common import header, row

from ttscale.data.results import RunDir
from ttscale.data.synthetic import arithmetic_problems
from ttscale.eval.evaluate import evaluate_loaded, load_run
from ttscale.eval.html_report import view
from ttscale.recipe import load_config
from ttscale.types import Budget, Completion, ProblemResult, TreeNode

BEAM_WIDTH = 4
ROUNDS = 10


def _step(rng: random.Random, depth: int) -> str:
    a, b = rng.randint(2, 999), rng.randint(2, 999)
    return f"Step {depth}: we take {a} and add {b}, which gives {a + b} in total.\n"


def _beam_search(rng: random.Random, problem, n: int) -> ProblemResult:
    """A synthetic beam search's tree and candidates with the shape of search/beam.py's."""
    tree: list[TreeNode] = []
    # (node, text, step scores, tokens) of each live beam
    live: list[tuple[int | None, str, tuple[float, ...], int]] = [(None, "", (), 0)]
    done: list[tuple[int, str, tuple[float, ...], int]] = []
    for depth in range(1, ROUNDS + 1):
        k = n if depth == 1 else BEAM_WIDTH
        children = []
        for parent, text, scores, tokens in live:
            for _ in range(k):
                finish = depth == ROUNDS or rng.random() < depth / (ROUNDS + 2)
                answer = problem.answer if rng.random() < 0.4 else str(rng.randint(0, 99))
                step = f"Answer: \\boxed{{{answer}}}\n" if finish else _step(rng, depth)
                score = round(min(1.0, max(0.0, rng.gauss(0.55, 0.25))), 3)
                tree.append(TreeNode(len(tree), parent, step, score, len(step) // 4, finish))
                children.append((len(tree) - 1, text + step, scores + (score,), tokens + len(step) // 4))
        done += [c for c in children if tree[c[0]].completed]
        active = sorted((c for c in children if not tree[c[0]].completed), key=lambda c: -c[2][-1])
        live = active[: max(1, n // BEAM_WIDTH)]
        if len(done) >= n or not live:
            break
    done = sorted(done, key=lambda c: -c[2][-1])[:n]
    completions = tuple(Completion(text=t, steps=tuple(s for s in t.splitlines(keepends=True)),
                                   answer=t.rsplit("{", 1)[1].split("}")[0], step_scores=sc, n_tokens=tok)
                        for _, t, sc, tok in done)
    tokens = sum(node.n_tokens for node in tree)
    return ProblemResult(problem, "beam_search", completions, selected=0 if completions else None,
                         budget=Budget(generated_tokens=tokens, flops=2.7e8 * tokens), tree=tuple(tree), distinct=True)


def make_run(folder: Path, n_problems: int, n: int) -> Path:
    cfg = load_config(None, ["search.strategy=beam_search", f"search.n={n}", f"search.beam_width={BEAM_WIDTH}",
                             "output.save_trees=true", f"output.dir={folder}"])
    run_dir = RunDir(folder)
    run_dir.prepare(cfg.to_dict(), overwrite=True)
    rng = random.Random(0)
    for p in arithmetic_problems(n_problems, seed=3):
        run_dir.append(_beam_search(rng, p, n))
    run_dir.release()
    return folder


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)


_LOADED = "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd / 1000;"
_DECODE_ALL = """
const done = arguments[arguments.length - 1], t0 = performance.now();
(async () => {
  for (const el of document.querySelectorAll('script[type="application/octet-stream"]')) {
    const raw = atob(el.textContent.trim()), bytes = new Uint8Array(raw.length);
    for (let k = 0; k < raw.length; k++) bytes[k] = raw.charCodeAt(k);
    const s = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    JSON.parse(await new Response(s).text());
  }
})().then(() => done((performance.now() - t0) / 1000));
"""
_OPEN = """
const [id, done] = [arguments[0], arguments[arguments.length - 1]], t0 = performance.now();
document.querySelector('nav button[data-view="problems"]').click();
document.querySelector(`#problem-table tbody tr[data-id="${id}"]`).click();
const wait = () => [...document.querySelectorAll('.pane')].every((p) => p.dataset.rendered)
  ? done((performance.now() - t0) / 1000) : requestAnimationFrame(wait);
wait();
"""


def _load(driver, uri: str) -> float:
    """Seconds to the load event, the median of three loads (this shared machine's load times scatter)."""
    from selenium.webdriver.support.ui import WebDriverWait

    times = []
    for _ in range(3):
        driver.get("about:blank")
        driver.get(uri)
        WebDriverWait(driver, 600).until(lambda d: d.execute_script(_LOADED) > 0)
        times.append(driver.execute_script(_LOADED))
    return sorted(times)[1]


def browser_rows(page: Path, largest: str, label: str) -> None:
    from plotly.offline import get_plotlyjs
    from selenium.webdriver.support.ui import WebDriverWait

    bare = page.with_name("plotly-only.html")
    bare.write_text(f"<!doctype html><meta charset=utf-8><script>{get_plotlyjs()}</script>", encoding="utf-8")
    driver = _driver()
    try:
        driver.set_script_timeout(600)
        driver.get(page.as_uri())  # in a fresh browser: nothing of plotly.js compiled yet
        WebDriverWait(driver, 600).until(lambda d: d.execute_script(_LOADED) > 0)
        cold = driver.execute_script(_LOADED)
        alone = _load(driver, bare.as_uri())
        load = _load(driver, page.as_uri())
        row(f"{label} first load s", cold, load, "(a fresh browser; baseline: the page loaded again)")
        row(f"{label} load s vs plotly.js", load, alone, "(baseline: a page of plotly.js alone)")
        eager = load + driver.execute_async_script(_DECODE_ALL)
        row(f"{label} load s", load, eager, "(baseline: every block decoded and parsed at load)")
        opened = driver.execute_async_script(_OPEN, largest)
        row(f"{label} open tree s", opened, load, "(the largest tree, until drawn; baseline: page load)")
        heap = driver.execute_script("return performance.memory ? performance.memory.usedJSHeapSize / 1e6 : 0")
        print(f"# {label}: JS heap {heap:.0f} MB after opening one tree", flush=True)
    finally:
        driver.quit()


def bench(size: str, work: Path, browser: bool) -> None:
    n_problems, n = (int(x) for x in size.split("x"))
    folder = make_run(work / f"run-{size}", n_problems, n)
    data_mb = sum((folder / f).stat().st_size for f in ("completions.jsonl", "trees.jsonl")) / 1e6
    start = time.perf_counter()
    runs = [load_run(folder)]
    evaluate_loaded(runs)
    t_eval = time.perf_counter() - start
    start = time.perf_counter()
    page = view([folder], work / f"report-{size}.html")
    t_build = time.perf_counter() - start
    trees = (folder / "trees.jsonl").read_text().count('"parent"')
    label = size
    row(f"{label} page MB", page.stat().st_size / 1e6, data_mb, f"(baseline: run files; {trees} tree nodes)")
    row(f"{label} build s", t_build, t_eval, "(baseline: the evaluation alone)")
    if browser:
        import json

        largest = max((json.loads(line) for line in (folder / "trees.jsonl").open()), key=lambda t: len(t["nodes"]))
        browser_rows(page, largest["id"], label)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["60x16", "500x256"], help="PROBLEMSxN runs to build")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium load times")
    ap.add_argument("--keep", type=Path, help="write runs and pages here instead of a temporary folder")
    args = ap.parse_args()
    header()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            bench(size, work, browser=not args.no_browser and shutil.which("chromedriver") is not None)


if __name__ == "__main__":
    main()
