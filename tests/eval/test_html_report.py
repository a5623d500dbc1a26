"""report.html: what each tree node is shown as, the vote beside it, the page's files and errors, and the
page itself in headless Chromium (Debian's package): no console errors, nothing fetched, a filter, a tree."""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.eval.html_report import GENERATOR, HTML_REPORT
from ttscale.eval.html_trees import (
    CANDIDATE,
    CHOSEN,
    COMPLETED,
    DUPLICATE,
    EXPANDED,
    PRUNED,
    candidates_payload,
    tree_payload,
)
from ttscale.eval.report import write_evaluation
from ttscale.types import Completion, Problem, ProblemResult, TreeNode


def _node(i, parent, step, score=0.5, completed=False):
    return TreeNode(i, parent, step, score, 3, completed)


def test_each_node_shows_how_its_beam_ended():
    nodes = [_node(0, None, "A\n"), _node(1, None, "B\n"),
             _node(2, 0, "ans 1", completed=True), _node(3, 0, "ans 1", completed=True),
             _node(4, 0, "ans 2", completed=True), _node(5, 0, "ans 3", completed=True)]
    # the second candidate's text ends in whitespace the tree's does not: the same solution (solution_key)
    t = tree_payload(nodes, ["A\nans 1", "A\nans 3 \n"], selected=0)
    assert t["state"] == [EXPANDED, PRUNED, CHOSEN, DUPLICATE, COMPLETED, CANDIDATE]
    assert t["path"] == [0, 2] and t["candidate_nodes"] == [2, 5]
    assert t["parent"] == [-1, -1, 0, 0, 0, 0]


def test_two_candidates_with_one_text_end_at_two_nodes_and_a_stranger_at_none():
    nodes = [_node(0, None, "x", completed=True), _node(1, None, "x", completed=True)]
    t = tree_payload(nodes, ["x", "x", "never grown"], selected=2)
    assert t["candidate_nodes"] == [0, 1, -1]
    assert t["path"] == [] and CHOSEN not in t["state"]


def test_a_damaged_tree_is_drawn_once_without_looping():
    # ids from a hand-edited file: a two-node loop, an unknown parent, an id listed twice
    nodes = [_node(0, 1, "a"), _node(1, 0, "b"), _node(2, 99, "c"), _node(3, None, "d"), _node(3, 2, "e")]
    t = tree_payload(nodes, [], selected=None)
    parent = t["parent"]
    assert len(parent) == len(nodes) and parent[2] == -1 and parent[4] == -1
    for start in range(len(nodes)):  # every walk up reaches a root
        seen, i = set(), start
        while i >= 0:
            assert i not in seen
            seen.add(i)
            i = parent[i]


def _completion(text, answer, score):
    return Completion(text=text, steps=(text,), answer=answer, step_scores=(score,), n_tokens=5)


def test_candidates_show_the_vote_the_pick_saw():
    r = ProblemResult(Problem("p", "q", "2"), "beam_search", (
        _completion("s1 \\boxed{2}", "2", 0.5), _completion("s1 \\boxed{2}", "2", 0.5),
        _completion("s2 \\boxed{4}", "4", 0.9), _completion("s3 \\boxed{2}", "2", 0.3)), selected=2, distinct=True)
    c = candidates_payload(r, [True, True, False, True], "weighted", "last", with_text=False)
    # the repeat casts no vote, so 2 weighs 0.5 + 0.3 and loses to 4's 0.9, as the pick saw it
    assert [(g["answer"], g["votes"], g["weight"], g["ok"]) for g in c["groups"]] == [("4", 1, 0.9, False),
                                                                                    ("2", 2, 0.8, True)]
    assert c["group"] == [1, -1, 0, 1] and "text" not in c
    majority = candidates_payload(r, [True, True, False, True], "majority", "last", with_text=True)
    assert [(g["answer"], g["weight"]) for g in majority["groups"]] == [("2", 2.0), ("4", 1.0)]
    assert majority["text"][2] == "s2 \\boxed{4}"


def _fake_run(fake_cfg, tmp_path, strategy, n, *extra):
    from ttscale.runner import run

    cfg = fake_cfg("verifier.name=fake", f"search.strategy={strategy}", f"search.n={n}", "dataset.limit=8",
                   "output.save_trees=true", f"output.dir={tmp_path / f'{strategy}{n}'}", *extra)
    return run(cfg, progress=False).run_dir


def _unpack(page: str, block: str) -> dict:
    text = re.search(rf'<script type="application/octet-stream" id="{block}">([^<]*)</script>', page).group(1)
    return json.loads(gzip.decompress(base64.b64decode(text)))


def _pick_right(row) -> bool:
    return row["selected"] is not None and row["completions"][row["selected"]]["answer"] == row["problem"]["answer"]


def _leaves(nodes) -> int:
    parents = {n["parent"] for n in nodes}
    return sum(n["id"] not in parents for n in nodes)


@pytest.fixture
def two_runs(fake_cfg, tmp_path):
    return [_fake_run(fake_cfg, tmp_path, "beam_search", 4, "search.beam_width=2", "search.max_iterations=5"),
            _fake_run(fake_cfg, tmp_path, "best_of_n", 8)]


def test_evaluate_writes_a_page_that_holds_every_problem_and_fetches_nothing(two_runs, tmp_path):
    write_evaluation(two_runs, tmp_path / "eval", seeds=2)
    page = (tmp_path / "eval" / HTML_REPORT).read_text(encoding="utf-8")
    assert GENERATOR in page
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link[^>]*href=", page)
    data = json.loads(re.search(r'<script type="application/json" id="ttscale-data">([^<]*)</script>', page).group(1))
    rows = [json.loads(line) for line in (two_runs[0] / "completions.jsonl").read_text().splitlines()]
    trees = {t["id"]: t["nodes"] for t in map(json.loads, (two_runs[0] / "trees.jsonl").read_text().splitlines())}
    assert [p["id"] for p in data["problems"]] == [r["id"] for r in rows]
    for i, row in enumerate(rows):
        shown = _unpack(page, f"p{i}r0")
        assert shown["tree"]["step"] == [n["step"] for n in trees[row["id"]]]
        assert shown["candidates"]["answer"] == [c["answer"] for c in row["completions"]]
        assert shown["candidates"]["selected"] == row["selected"]
        assert (shown["tree"]["state"].count(CHOSEN) == 1) == (row["selected"] is not None)
    # written again over its own folder: report.html is the evaluation's own file
    write_evaluation(two_runs, tmp_path / "eval", seeds=2)


def test_view_writes_the_page_and_refuses_what_is_not_its_own(two_runs, tmp_path):
    out = tmp_path / "page" / "runs.html"
    res = CliRunner().invoke(app, ["view", *map(str, two_runs), "--output", str(out)])
    assert res.exit_code == 0 and GENERATOR in out.read_text(encoding="utf-8")
    assert CliRunner().invoke(app, ["view", str(two_runs[0]), "--output", str(out)]).exit_code == 0  # its own page
    foreign = tmp_path / "notes.html"
    foreign.write_text("<p>mine</p>")
    cases = [
        ([str(two_runs[0]), "--output", str(foreign)], "is not a ttscale report"),
        ([str(two_runs[0]), "--output", str(two_runs[0] / "page.html")], "inside the input"),
        ([str(tmp_path / "missing"), "--output", str(out)], "run directory not found"),
        ([str(two_runs[0]), "--output", str(tmp_path)], "is a folder"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(app, ["view", *args])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in res.output
    assert foreign.read_text() == "<p>mine</p>"


def test_view_reads_a_run_without_trees_and_one_with_a_corrupt_tree_row(fake_cfg, tmp_path):
    plain = _fake_run(fake_cfg, tmp_path, "best_of_n", 4, "output.save_trees=false")
    damaged = _fake_run(fake_cfg, tmp_path, "beam_search", 4)
    lines = (damaged / "trees.jsonl").read_text().splitlines()
    (damaged / "trees.jsonl").write_text("\n".join(["{not json", '{"id": 5, "nodes": "x"}', *lines[1:]]) + "\n")
    out = tmp_path / "view.html"
    res = CliRunner().invoke(app, ["view", str(plain), str(damaged), "--output", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "tree" not in _unpack(page, "p0r0") and "tree" not in _unpack(page, "p0r1")
    assert "tree" in _unpack(page, "p1r1")


# ---- in a real browser --------------------------------------------------------------------------

def _browser_paths() -> tuple[str, str] | None:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture
def browser():
    paths = _browser_paths()
    if paths is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver; .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_page_in_chromium(two_runs, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    page = tmp_path / HTML_REPORT
    write_evaluation(two_runs, tmp_path / "eval", seeds=2)
    shutil.copy(tmp_path / "eval" / HTML_REPORT, page)
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#fig-n .main-svg"))
    browser.save_screenshot(str(tmp_path / "overview.png"))
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # offline

    beam = [json.loads(line) for line in (two_runs[0] / "completions.jsonl").read_text().splitlines()]
    bon = [json.loads(line) for line in (two_runs[1] / "completions.jsonl").read_text().splitlines()]
    browser.find_element(By.CSS_SELECTOR, 'nav button[data-view="problems"]').click()
    assert [tr.get_attribute("data-id") for tr in browser.find_elements(By.CSS_SELECTOR, "#problem-table tbody tr")] \
        == [r["id"] for r in beam]
    # "beam search wrong, best-of-N right", as a researcher would ask of the table
    Select(browser.find_element(By.CSS_SELECTOR, 'select.filter-run[data-run="0"]')).select_by_value("wrong")
    Select(browser.find_element(By.CSS_SELECTOR, 'select.filter-run[data-run="1"]')).select_by_value("missed")
    shown = [tr.get_attribute("data-id") for tr in browser.find_elements(By.CSS_SELECTOR, "#problem-table tbody tr")]
    pick_ok = {(k, r["id"]): _pick_right(r) for k, run in enumerate((beam, bon)) for r in run}
    any_ok = {r["id"]: any(c["answer"] == r["problem"]["answer"] for c in r["completions"]) for r in bon}
    expect = [r["id"] for r in beam if not pick_ok[0, r["id"]] and not pick_ok[1, r["id"]] and any_ok[r["id"]]]
    assert shown == expect and 0 < len(expect) < len(beam)
    assert browser.find_element(By.ID, "filter-count").text == f"{len(expect)} of {len(beam)} problems"
    for k in (0, 1):
        Select(browser.find_element(By.CSS_SELECTOR, f'select.filter-run[data-run="{k}"]')).select_by_value("")
    level = beam[-1]["problem"]["level"]
    Select(browser.find_element(By.ID, "filter-level")).select_by_value(str(level))
    shown = [tr.get_attribute("data-id") for tr in browser.find_elements(By.CSS_SELECTOR, "#problem-table tbody tr")]
    assert shown == [r["id"] for r in beam if r["problem"]["level"] == level]
    Select(browser.find_element(By.ID, "filter-level")).select_by_value("")
    browser.save_screenshot(str(tmp_path / "problems.png"))

    trees = {t["id"]: t["nodes"] for t in map(json.loads, (two_runs[0] / "trees.jsonl").read_text().splitlines())}
    deepest = max(trees, key=lambda pid: len(trees[pid]))
    browser.find_element(By.CSS_SELECTOR, f'#problem-table tbody tr[data-id="{deepest}"]').click()
    WebDriverWait(browser, 30).until(
        lambda d: all(p.get_attribute("data-rendered") for p in d.find_elements(By.CSS_SELECTOR, ".pane")))
    panes = browser.find_elements(By.CSS_SELECTOR, ".pane")
    assert len(panes) == 2  # the two runs side by side
    stats = panes[0].find_element(By.CSS_SELECTOR, ".tree-stats")
    assert int(stats.get_attribute("data-leaves")) == _leaves(trees[deepest])
    points = panes[0].find_elements(By.CSS_SELECTOR, ".tree .scatterlayer .point")
    assert len(points) == len(trees[deepest]) + 1  # every node and the problem's root, each drawn once
    cands = panes[0].find_elements(By.CSS_SELECTOR, ".cands tbody tr")
    assert len(cands) == len(next(r for r in beam if r["id"] == deepest)["completions"])
    assert len(panes[1].find_elements(By.CSS_SELECTOR, ".cands tbody tr")) == len(bon[0]["completions"])
    cands[0].click()
    detail = panes[0].find_element(By.CSS_SELECTOR, ".node-detail").text
    assert "candidate 0" in detail and "scores along the path" in detail
    browser.save_screenshot(str(tmp_path / "tree.png"))
    assert (tmp_path / "tree.png").stat().st_size > 10_000
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
