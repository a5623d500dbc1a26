// The report page: three views over the data blocks html_report.py writes. Plotly draws every chart;
// this file lays out trees, fills tables and decodes a problem's block only when it is opened.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("ttscale-data").textContent);
  const FIGURES = JSON.parse(document.getElementById("ttscale-figures").textContent);
  const RUNS = DATA.runs, ROWS = DATA.problems, STATES = DATA.states;
  const CHOSEN = STATES.indexOf("chosen");
  const LABELS = { expanded: "expanded", pruned: "pruned (unfinished leaf)", completed: "finished, not returned",
    duplicate: "duplicate of another beam", candidate: "candidate", chosen: "picked" };
  const SYMBOLS = { expanded: "circle", pruned: "x", completed: "diamond", duplicate: "circle-open",
    candidate: "star", chosen: "star" };
  const SIZES = { expanded: 7, pruned: 8, completed: 9, duplicate: 8, candidate: 12, chosen: 18 };
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  // ColorBrewer's RdYlGn (plotly.js names no such scale): a low score red, a high one green.
  const SCORE_COLORS = [[0, "#d73027"], [0.25, "#fc8d59"], [0.5, "#fee08b"], [0.75, "#91cf60"], [1, "#1a9850"]];
  const CACHE_SIZE = 8;  // decoded problems kept; a 256-candidate tree is a few MB of objects
  const cache = new Map();
  const ui = { order: [], sort: { key: null, dir: 1 }, current: -1, paneRuns: [0, Math.min(1, RUNS.length - 1)] };

  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const fmt = (v, d) => (v == null ? "" : Number(v).toFixed(d));
  const mark = (ok) => (ok == null ? "" : ok ? "✓" : "✗");
  const runTag = (j) => `R${j + 1}`;

  // ---- views --------------------------------------------------------------------------------
  function show(view) {
    for (const v of ["overview", "problems", "problem"]) {
      $(`#view-${v}`).hidden = v !== view;
      $(`nav button[data-view="${v}"]`).classList.toggle("active", v === view);
    }
    if (view === "overview") drawOverview();
    if (view === "problems" && location.hash !== "#problems") history.replaceState(null, "", "#problems");
  }

  let overviewDrawn = false;
  function drawOverview() {
    if (overviewDrawn) return;
    overviewDrawn = true;
    for (const [id, fig] of Object.entries(FIGURES)) {
      const el = document.getElementById(id);
      if (el) Plotly.newPlot(el, fig.data, fig.layout, PLOT_CONFIG);
    }
  }

  // ---- problem table ------------------------------------------------------------------------
  const COLUMNS = [
    { key: "id", label: "id", get: (r) => r.id },
    { key: "level", label: "level", get: (r) => r.level },
    { key: "subject", label: "subject", get: (r) => r.subject },
    { key: "gold", label: "gold", get: (r) => r.gold, cls: "gold" },
  ];
  RUNS.forEach((run, j) => {
    const cell = (k) => (r) => (r.runs[j] ? r.runs[j][k] : null);
    COLUMNS.push(
      { key: `a${j}`, label: `${runTag(j)} answer`, get: cell(0), cls: "ans", title: run.label },
      { key: `ok${j}`, label: `${runTag(j)} pick`, get: cell(1), mark: true, title: run.label },
      { key: `pass${j}`, label: `${runTag(j)} pass@N`, get: cell(2), mark: true, title: run.label },
      { key: `tok${j}`, label: `${runTag(j)} tokens`, get: cell(3), title: run.label });
  });

  const RUN_FILTERS = {
    "": () => true,
    right: (c) => c && c[1],
    wrong: (c) => c && !c[1],
    missed: (c) => c && !c[1] && c[2],
    failed: (c) => c && c[4],
  };

  function buildFilters() {
    const levels = [...new Set(ROWS.map((r) => r.level).filter((l) => l != null))].sort((a, b) => a - b);
    $("#filter-level").insertAdjacentHTML("beforeend", levels.map((l) => `<option value="${esc(l)}">${esc(l)}</option>`).join(""));
    $("#run-legend").textContent = RUNS.map((run, j) => `${runTag(j)}: ${run.label}`).join(" · ");
    $("#filter-runs").innerHTML = RUNS.map((run, j) =>
      `<label title="${esc(run.label)}">${runTag(j)} <select data-run="${j}" class="filter-run">` +
      `<option value="">any</option><option value="right">pick right</option><option value="wrong">pick wrong</option>` +
      `<option value="missed">pick wrong, pass@N right</option><option value="failed">failed</option></select></label>`).join(" ");
    for (const el of document.querySelectorAll("#filters input, #filters select")) {
      el.addEventListener(el.tagName === "SELECT" ? "change" : "input", renderTable);
    }
    $("#problem-table thead").innerHTML = "<tr>" + COLUMNS.map((c) =>
      `<th data-key="${c.key}" title="${esc(c.title || "")}">${esc(c.label)}</th>`).join("") + "</tr>";
    $("#problem-table thead").addEventListener("click", (e) => {
      const th = e.target.closest("th");
      if (!th) return;
      ui.sort = { key: th.dataset.key, dir: ui.sort.key === th.dataset.key ? -ui.sort.dir : 1 };
      renderTable();
    });
    $("#problem-table tbody").addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (tr) openProblem(Number(tr.dataset.i));
    });
  }

  function filtered() {
    const text = $("#filter-text").value.trim().toLowerCase();
    const level = $("#filter-level").value;
    const perRun = [...document.querySelectorAll(".filter-run")].map((s) => [Number(s.dataset.run), RUN_FILTERS[s.value]]);
    const idx = [];
    ROWS.forEach((r, i) => {
      if (text && !r.id.toLowerCase().includes(text) && !r.question.toLowerCase().includes(text)) return;
      if (level && String(r.level) !== level) return;
      if (perRun.every(([j, keep]) => keep(r.runs[j]))) idx.push(i);
    });
    const col = COLUMNS.find((c) => c.key === ui.sort.key);
    if (col) {
      const key = (v) => (v == null ? [1, ""] : typeof v === "boolean" ? [0, Number(v)] : [0, v]);
      idx.sort((a, b) => {
        const [na, va] = key(col.get(ROWS[a])), [nb, vb] = key(col.get(ROWS[b]));
        if (na !== nb) return na - nb;  // empty cells last either way
        const c = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb), undefined, { numeric: true });
        return c * ui.sort.dir;
      });
    }
    return idx;
  }

  function renderTable() {
    ui.order = filtered();
    for (const th of document.querySelectorAll("#problem-table th")) {
      th.classList.toggle("asc", th.dataset.key === ui.sort.key && ui.sort.dir > 0);
      th.classList.toggle("desc", th.dataset.key === ui.sort.key && ui.sort.dir < 0);
    }
    $("#problem-table tbody").innerHTML = ui.order.map((i) => {
      const r = ROWS[i];
      return `<tr data-i="${i}" data-id="${esc(r.id)}">` + COLUMNS.map((c) => {
        const v = c.get(r);
        const cls = c.mark ? (v == null ? "" : v ? "ok" : "bad") : c.cls || "";
        return `<td class="${cls}">${esc(c.mark ? mark(v) : v)}</td>`;
      }).join("") + "</tr>";
    }).join("");
    $("#filter-count").textContent = `${ui.order.length} of ${ROWS.length} problems`;
  }

  // ---- one problem --------------------------------------------------------------------------
  async function payload(i, j) {
    const key = `p${i}r${j}`;
    if (cache.has(key)) return cache.get(key);
    const el = document.getElementById(key);
    if (!el) return null;
    const raw = atob(el.textContent.trim());
    const bytes = new Uint8Array(raw.length);
    for (let k = 0; k < raw.length; k++) bytes[k] = raw.charCodeAt(k);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const value = JSON.parse(await new Response(stream).text());
    cache.set(key, value);
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value);
    return value;
  }

  function openProblem(i) {
    ui.current = i;
    const r = ROWS[i];
    $("#nav-problem").disabled = false;
    history.replaceState(null, "", `#problem=${encodeURIComponent(r.id)}`);
    $("#problem-title").textContent = `${r.id}` + (r.level != null ? ` · level ${r.level}` : "") + ` · gold ${r.gold}`;
    $("#problem-question").textContent = r.question;
    const panes = $("#panes");
    const n = Math.min(2, RUNS.length);
    if (panes.children.length !== n) {
      panes.innerHTML = "";
      for (let k = 0; k < n; k++) panes.insertAdjacentHTML("beforeend", `<div class="pane" data-pane="${k}"></div>`);
    }
    show("problem");
    [...panes.children].forEach((pane, k) => renderPane(pane, ui.paneRuns[k], i));
  }

  function step(delta) {
    if (!ui.order.length) return;
    const at = ui.order.indexOf(ui.current);
    openProblem(ui.order[(at + delta + ui.order.length) % ui.order.length]);
  }

  async function renderPane(pane, j, i) {
    const want = `p${i}r${j}`;
    pane.dataset.want = want;
    delete pane.dataset.rendered;
    const cell = ROWS[i].runs[j];
    const options = RUNS.map((run, k) => `<option value="${k}"${k === j ? " selected" : ""}>${runTag(k)} ${esc(run.label)}</option>`).join("");
    const pick = cell ? `pick <b>${esc(cell[0])}</b> <span class="${cell[1] ? "ok" : "bad"}">${mark(cell[1])}</span> · ${esc(cell[3])} tokens` : "";
    pane.innerHTML = `<div class="pane-head"><select class="pane-run">${options}</select><span>${pick}</span></div>` +
      `<div class="pane-body">loading…</div>`;
    $(".pane-run", pane).addEventListener("change", (e) => {
      ui.paneRuns[Number(pane.dataset.pane)] = Number(e.target.value);
      renderPane(pane, Number(e.target.value), i);
    });
    const p = await payload(i, j);
    if (pane.dataset.want !== want) return;  // another problem or run was opened meanwhile
    const body = $(".pane-body", pane);
    if (!p) {
      body.innerHTML = `<p class="note">${esc(RUNS[j].label)} has no row for this problem.</p>`;
      pane.dataset.rendered = want;
      return;
    }
    body.innerHTML = (p.error ? `<p class="error">failed: ${esc(p.error)}</p>` : "") +
      (p.tree ? `<div class="tree-stats"></div><div class="tree"></div>` :
        `<p class="note">No search tree: ${RUNS[j].trees ? "none saved for this problem" : "this run was made without output.save_trees=true"}.</p>`) +
      `<div class="node-detail"><span class="note">Click a node or a candidate.</span></div>` + candidatesHtml(p.candidates);
    const view = { pane, p, tree: null };
    if (p.tree) await drawTree(view);
    for (const tr of pane.querySelectorAll(".cands tbody tr")) {
      tr.addEventListener("click", () => showCandidate(view, Number(tr.dataset.c)));
    }
    pane.dataset.rendered = want;
  }

  function candidatesHtml(c) {
    const groups = c.groups.map((g) => `<tr><td>${esc(g.answer)}</td><td class="${g.ok ? "ok" : "bad"}">${mark(g.ok)}</td>` +
      `<td>${g.votes}</td><td>${fmt(g.weight, 3)}</td></tr>`).join("");
    const rows = c.answer.map((a, k) => {
      const g = c.group[k] >= 0 ? c.groups[c.group[k]] : null;
      return `<tr data-c="${k}" class="${k === c.selected ? "picked" : ""}"><td>${k}${k === c.selected ? " ★" : ""}</td>` +
        `<td>${esc(a)}</td><td class="${c.ok[k] ? "ok" : "bad"}">${mark(c.ok[k])}</td><td>${fmt(c.score[k], 3)}</td>` +
        `<td>${g ? g.votes : "repeat"}</td><td>${g ? fmt(g.weight, 3) : ""}</td><td>${c.tokens[k]}</td><td>${esc(c.finish[k])}</td></tr>`;
    }).join("");
    return `<p class="note">Pick: ${esc(c.rule)}. ★ marks the pick.</p><div class="candidates">` +
      `<table class="groups"><thead><tr><th>answer</th><th></th><th>votes</th><th>weight</th></tr></thead><tbody>${groups}</tbody></table>` +
      `<table class="cands"><thead><tr><th>#</th><th>answer</th><th></th><th>score</th><th>votes</th><th>weight</th><th>tokens</th><th>finish</th></tr></thead>` +
      `<tbody>${rows}</tbody></table></div>`;
  }

  // ---- the tree -----------------------------------------------------------------------------
  // x: depth (the search round); y: leaves one slot apart in depth-first order, a parent between its
  // first and last child. Iterative, since a long search is deeper than the call stack allows.
  function layout(t) {
    const n = t.parent.length, root = n;
    const kids = Array.from({ length: n + 1 }, () => []);
    for (let i = 0; i < n; i++) kids[t.parent[i] < 0 ? root : t.parent[i]].push(i);
    const x = new Array(n + 1).fill(0), y = new Array(n + 1).fill(0);
    let next = 0;
    const stack = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1], v = top[0], k = top[1];
      if (k < kids[v].length) {
        top[1]++;
        x[kids[v][k]] = x[v] + 1;
        stack.push([kids[v][k], 0]);
      } else {
        stack.pop();
        const c = kids[v];
        y[v] = c.length ? (y[c[0]] + y[c[c.length - 1]]) / 2 : next++;
      }
    }
    return { x, y, kids, root };
  }

  function hover(t, i) {
    const text = t.step[i].replace(/\s+/g, " ").trim();
    const short = text.length > 90 ? text.slice(0, 89) + "…" : text;
    return `#${t.id[i]} ${LABELS[STATES[t.state[i]]]} · score ${t.score[i] == null ? "–" : t.score[i].toFixed(3)}<br>${esc(short)}`;
  }

  async function drawTree(view) {
    const t = view.p.tree, lay = layout(t), n = t.parent.length;
    view.tree = { t, lay };
    const ex = [], ey = [];
    for (let i = 0; i < n; i++) {
      const p = t.parent[i] < 0 ? lay.root : t.parent[i];
      ex.push(lay.x[p], lay.x[i], null);
      ey.push(lay.y[p], lay.y[i], null);
    }
    const chosen = [lay.root, ...t.path];
    const traces = [
      { type: "scatter", mode: "lines", x: ex, y: ey, line: { color: "#c9c9c9", width: 1 }, hoverinfo: "skip", showlegend: false },
      { type: "scatter", mode: "lines", name: "picked path", x: chosen.map((i) => lay.x[i]), y: chosen.map((i) => lay.y[i]),
        line: { color: "#1f3b73", width: 3 }, hoverinfo: "skip" },
      { type: "scatter", mode: "markers", name: "problem", x: [0], y: [lay.y[lay.root]], customdata: [-1],
        marker: { symbol: "square", color: "#333", size: 10 }, hovertemplate: "the problem<extra></extra>" },
    ];
    const scores = t.score.filter((s) => s != null);
    const unit = scores.every((s) => s >= 0 && s <= 1);
    STATES.forEach((name, s) => {
      for (const scored of [true, false]) {
        const idx = [];
        for (let i = 0; i < n; i++) if (t.state[i] === s && (t.score[i] != null) === scored) idx.push(i);
        if (!idx.length) continue;
        traces.push({
          type: "scatter", mode: "markers", name: LABELS[name], legendgroup: name, customdata: idx,
          x: idx.map((i) => lay.x[i]), y: idx.map((i) => lay.y[i]), text: idx.map((i) => hover(t, i)),
          hovertemplate: "%{text}<extra></extra>",
          marker: { symbol: SYMBOLS[name], size: SIZES[name], color: scored ? idx.map((i) => t.score[i]) : "#b0b0b0",
            coloraxis: scored ? "coloraxis" : undefined,
            line: { color: s === CHOSEN ? "#000" : "rgba(0,0,0,0.35)", width: s === CHOSEN ? 2 : 1 } },
        });
      }
    });
    traces.push({ type: "scatter", mode: "markers", name: "selected", x: [], y: [], hoverinfo: "skip", showlegend: false,
      marker: { symbol: "circle-open", size: 24, color: "#e91e63", line: { width: 3 } } });
    view.tree.highlight = traces.length - 1;
    const leaves = lay.kids.slice(0, n).filter((k) => !k.length).length;
    const counts = STATES.map((name, s) => [name, t.state.filter((v) => v === s).length]).filter(([, c]) => c);
    const stats = $(".tree-stats", view.pane);
    stats.dataset.nodes = n;
    stats.dataset.leaves = leaves;
    const deep = lay.x.reduce((a, b) => Math.max(a, b), 0);
    stats.textContent = `${n} nodes, ${leaves} leaves, ${deep} step${deep === 1 ? "" : "s"} deep (x: step) · ` +
      counts.map(([name, c]) => `${c} ${LABELS[name]}`).join(", ");
    const div = $(".tree", view.pane);
    div.style.height = `${Math.min(900, Math.max(320, 14 * leaves))}px`;  // wide trees get room; zoom does the rest
    await Plotly.newPlot(div, traces, {
      margin: { l: 10, r: 10, t: 10, b: 20 }, hovermode: "closest", dragmode: "zoom",
      xaxis: { dtick: 1, zeroline: false, showgrid: false },
      yaxis: { visible: false },
      coloraxis: Object.assign({ colorscale: SCORE_COLORS, colorbar: { title: { text: "score" }, thickness: 10, len: 0.8 } },
        unit ? { cmin: 0, cmax: 1 } : {}),
      legend: { orientation: "h", y: -0.06, yanchor: "top", font: { size: 11 } },
    }, PLOT_CONFIG);
    div.on("plotly_click", (e) => {
      const i = e.points[0].customdata;
      if (typeof i === "number") showNode(view, i);
    });
  }

  function pathOf(t, i) {
    const out = [];
    for (let k = i; k >= 0; k = t.parent[k]) out.push(k);
    return out.reverse();
  }

  function showNode(view, i, candidate) {
    const detail = $(".node-detail", view.pane);
    if (i < 0) {
      detail.innerHTML = `<b>the problem</b><pre>${esc(ROWS[ui.current].question)}</pre>`;
      return;
    }
    const { t, lay } = view.tree;
    Plotly.restyle($(".tree", view.pane), { x: [[lay.x[i]]], y: [[lay.y[i]]] }, [view.tree.highlight]);
    const path = pathOf(t, i);
    const scores = path.map((k) => (t.score[k] == null ? "–" : t.score[k].toFixed(3))).join(" → ");
    const c = view.p.candidates, k = candidate != null ? candidate : c.node ? c.node.indexOf(i) : -1;
    const cand = k >= 0 ? ` · candidate ${k}: answer <b>${esc(c.answer[k])}</b> ${mark(c.ok[k])}` : "";
    detail.innerHTML = `<b>#${t.id[i]}</b> ${esc(LABELS[STATES[t.state[i]]])} · score ${t.score[i] == null ? "–" : t.score[i].toFixed(3)}` +
      ` · ${t.tokens[i]} tokens · step ${lay.x[i]}${cand}<pre class="step">${esc(t.step[i])}</pre>` +
      `<div class="note">scores along the path: ${scores}</div>` +
      (k >= 0 ? `<pre class="cand-text">${esc(path.map((p) => t.step[p]).join(""))}</pre>` : "");
  }

  function showCandidate(view, k) {
    const c = view.p.candidates;
    for (const tr of view.pane.querySelectorAll(".cands tbody tr")) tr.style.outline = Number(tr.dataset.c) === k ? "2px solid #e91e63" : "";
    if (view.tree && c.node && c.node[k] >= 0) return showNode(view, c.node[k], k);
    $(".node-detail", view.pane).innerHTML = `<b>candidate ${k}</b>: answer <b>${esc(c.answer[k])}</b> ${mark(c.ok[k])}` +
      ` · score ${fmt(c.score[k], 3)} · ${c.tokens[k]} tokens<pre class="cand-text">${esc(c.text[k])}</pre>`;
  }

  // ---- start --------------------------------------------------------------------------------
  for (const b of document.querySelectorAll("nav button")) {
    b.addEventListener("click", () => (b.dataset.view === "problem" ? openProblem(ui.current) : show(b.dataset.view)));
  }
  $("#prev-problem").addEventListener("click", () => step(-1));
  $("#next-problem").addEventListener("click", () => step(1));
  buildFilters();
  renderTable();
  const hash = decodeURIComponent(location.hash.slice(1));
  const at = hash.startsWith("problem=") ? ROWS.findIndex((r) => r.id === hash.slice(8)) : -1;
  if (at >= 0) openProblem(at);
  else show(hash === "problems" ? "problems" : "overview");
})();
