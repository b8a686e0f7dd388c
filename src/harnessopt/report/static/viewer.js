/* harnessopt trace viewer: one static page, no server, no dependencies.
 * The run data is embedded as JSON in <script id="report-data">. Navigation lives in the URL hash
 * (#/run/<id>/cand/<cid>, #/run/<id>/rollout/<n>, ...) so the back button and links work. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var RUNS = {};
  var natural = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" }).compare;
  var SPLIT_ORDER = { search: 0, test: 1, train: 2 };
  function splitRank(split) { return Object.prototype.hasOwnProperty.call(SPLIT_ORDER, split) ? SPLIT_ORDER[split] : 9; }
  DATA.runs.forEach(function (run) {
    RUNS[run.id] = run;
    run.cands = {};
    run.candidates.forEach(function (c) { run.cands[c.id] = c; });
    run.rollouts.sort(function (a, b) {
      return natural(a.candidate_id, b.candidate_id) || splitRank(a.split) - splitRank(b.split)
        || natural(a.task_id, b.task_id) || a.trial - b.trial;
    });
    run.rollouts.forEach(function (t, i) { t._i = i; });
  });
  var app = document.getElementById("app");
  var ui = { query: "", split: "all", status: "all", cand: "all", candFilter: "", candShow: "all", codeTab: "diff" };

  // ------------------------------------------------------------------ helpers

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? "" : v);
      });
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, kid) {
    if (kid === null || kid === undefined || kid === false) return;
    if (Array.isArray(kid)) { kid.forEach(function (k) { add(el, k); }); return; }
    el.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  function f3(x) { return x === null || x === undefined ? "-" : Number(x).toFixed(3); }
  function signed(x) { return x === null || x === undefined ? "-" : (x >= 0 ? "+" : "") + Number(x).toFixed(3); }
  function usd(x) { return x === null || x === undefined ? "-" : "$" + Number(x).toFixed(4); }
  function badge(text, kind, title) { return h("span", { class: "badge " + (kind || ""), title: title || null }, text); }
  function link(text, hash, attrs) {
    var a = h("a", Object.assign({ href: hash }, attrs || {}), text);
    return a;
  }
  function hashFor() { return "#/" + Array.prototype.map.call(arguments, encodeURIComponent).join("/"); }
  function clip(s, n) { s = String(s === null || s === undefined ? "" : s); return s.length > n ? s.slice(0, n - 1) + "…" : s; }
  function statusOf(t) {
    if (t.status !== "ok") return t.status;
    return t.score >= 1 ? "pass" : (t.score > 0 ? "partial" : "fail");
  }
  function statusBadge(t) {
    var s = statusOf(t);
    return badge(s, s === "pass" ? "good" : (s === "partial" ? "warn" : "bad"));
  }
  // Text with the current search query highlighted (safe: text nodes only).
  function marked(text, tag, cls) {
    var el = h(tag || "span", cls ? { class: cls } : null);
    text = String(text === null || text === undefined ? "" : text);
    var q = ui.query.trim().toLowerCase();
    if (!q) { el.textContent = text; return el; }
    var low = text.toLowerCase(), i = 0, j;
    while ((j = low.indexOf(q, i)) >= 0) {
      add(el, text.slice(i, j));
      add(el, h("mark", null, text.slice(j, j + q.length)));
      i = j + q.length;
    }
    add(el, text.slice(i));
    return el;
  }
  function pre(text, cls) { return marked(text, "pre", cls); }
  function diffPre(diff) {
    var el = h("pre", { class: "diff" });
    if (!diff) { el.textContent = "(no diff: this is the seed harness)"; return el; }
    diff.split("\n").forEach(function (line) {
      var cls = line.startsWith("+++") || line.startsWith("---") ? "hunk"
        : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : null;
      var span = marked(line + "\n", "span", cls);
      el.appendChild(span);
    });
    return el;
  }
  function kv(pairs) {
    var el = h("div", { class: "kv" });
    pairs.forEach(function (p) { if (p) { add(el, h("div", null, p[0])); add(el, h("div", null, p[1])); } });
    return el;
  }
  function table(headers, rows, onclick, selected) {
    var t = h("table", { class: "grid" });
    var tr = h("tr");
    headers.forEach(function (x) { tr.appendChild(h("th", { class: x.num ? "num" : null }, x.t || x)); });
    t.appendChild(h("thead", null, tr));
    var body = h("tbody");
    rows.forEach(function (row, i) {
      var r = h("tr", { class: (onclick ? "click" : "") + (selected && selected(i) ? " sel" : "") });
      if (onclick) r.addEventListener("click", function () { onclick(i); });
      row.forEach(function (cell, k) { r.appendChild(h("td", { class: headers[k].num ? "num" : null }, cell)); });
      body.appendChild(r);
    });
    t.appendChild(body);
    return t;
  }
  function traceText(t) {
    if (t._text) return t._text;
    var parts = [t.task_id, t.candidate_id, t.task_input, t.answer, t.explanation, t.stdout, t.stderr];
    (t.model_calls || []).forEach(function (c) {
      parts.push(c.prompt, c.response, c.error);
      (c.messages || []).forEach(function (m) { parts.push(typeof m.content === "string" ? m.content : JSON.stringify(m.content)); });
    });
    (t.tool_calls || []).forEach(function (c) { parts.push(c.name, JSON.stringify(c.args), JSON.stringify(c.result), c.error); });
    (t.logs || []).forEach(function (l) { parts.push(l.msg); });
    if (t.error) parts.push(t.error.type, t.error.message, t.error.traceback);
    t._text = parts.filter(function (x) { return x !== null && x !== undefined; }).join("\n").toLowerCase();
    return t._text;
  }
  function currentRunId() {
    var r = route();
    if (r.run && RUNS[r.run]) return r.run;
    return DATA.runs.length ? DATA.runs[0].id : null;
  }
  function filteredRollouts(run, candOnly) {
    var q = ui.query.trim().toLowerCase();
    return run.rollouts.filter(function (t) {
      if (candOnly && t.candidate_id !== candOnly) return false;
      if (!candOnly && ui.cand !== "all" && t.candidate_id !== ui.cand) return false;
      if (ui.split !== "all" && t.split !== ui.split) return false;
      if (ui.status !== "all") {
        var s = statusOf(t);
        if (ui.status === "failed" ? s === "pass" : s !== ui.status) return false;
      }
      if (q && traceText(t).indexOf(q) < 0) return false;
      return true;
    });
  }

  // ------------------------------------------------------------------ routing

  function route() {
    var parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    var r = { view: parts[0] || "" };
    if (parts[0] === "run") { r.run = parts[1]; r.view = parts[2] || "overview"; r.arg = parts[3]; }
    return r;
  }
  window.addEventListener("hashchange", function () { render(); window.scrollTo(0, 0); });

  // ------------------------------------------------------------------ header

  function header(r) {
    var runId = currentRunId();
    var bar = h("header", { class: "top" });
    bar.appendChild(h("span", { class: "title", title: DATA.title }, DATA.title));
    var tabs = h("nav", { class: "tabs" });
    if (DATA.experiment) tabs.appendChild(link("Experiment", "#/exp", { class: r.view === "exp" || r.view === "" ? "on" : "" }));
    if (runId) {
      [["overview", "Run"], ["cands", "Candidates"], ["rollouts", "Rollouts"], ["meta", "Meta-agent"]].forEach(function (x) {
        var on = r.run && (r.view === x[0] || (x[0] === "rollouts" && r.view === "rollout") || (x[0] === "cands" && r.view === "cand"));
        if (!DATA.experiment && r.view === "" && x[0] === "overview") on = true;
        tabs.appendChild(link(x[1], hashFor("run", runId, x[0]), { class: on ? "on" : "", "data-testid": "tab-" + x[0] }));
      });
    }
    bar.appendChild(tabs);
    if (DATA.runs.length > 1) {
      var sel = h("select", { title: "run", "data-testid": "run-select",
        onchange: function () {
          var same = { cand: "cands", cands: "cands", rollout: "rollouts", rollouts: "rollouts", meta: "meta" };
          location.hash = hashFor("run", sel.value, (r.run && same[r.view]) || "overview");
        } });
      DATA.runs.forEach(function (run) {
        sel.appendChild(h("option", { value: run.id, selected: run.id === runId }, run.id));
      });
      bar.appendChild(sel);
    }
    var search = h("input", { type: "search", placeholder: "search traces (prompts, outputs, errors)…", value: ui.query,
      "data-testid": "search" });
    search.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        ui.query = search.value;
        if (runId && (r.view !== "rollouts" || !r.run)) location.hash = hashFor("run", runId, "rollouts");
        else render();
      }
    });
    bar.appendChild(search);
    return bar;
  }

  // ------------------------------------------------------------------ experiment overview

  function experimentView() {
    var e = DATA.experiment;
    var out = h("div");
    out.appendChild(h("h1", null, "Experiment " + e.id));
    out.appendChild(h("div", { class: "panel" }, kv([
      ["seed harness", e.spec.harness], ["benchmark", e.spec.benchmark + " (split seed " + e.spec.split_seed + ")"],
      ["budget per run", e.budget_text], ["seeds", e.spec.seeds.join(", ")],
      ["models", h("div", null, Object.keys(e.models).sort().map(function (a) {
        return h("div", null, h("b", null, a + ": "), e.models[a].label || e.models[a].spec);
      }))],
    ])));
    out.appendChild(h("h2", null, "Arms: held-out test score of the final champion"));
    out.appendChild(table(
      ["arm", "feedback", "meta : task", { t: "seeds", num: 1 }, { t: "champion test", num: 1 }, { t: "95% CI", num: 1 },
        { t: "seed test", num: 1 }, { t: "improvement", num: 1 }, { t: "rollouts to best", num: 1 }, { t: "USD to best", num: 1 },
        { t: "proposed", num: 1 }, { t: "promoted", num: 1 }, { t: "spot / full", num: 1 }, { t: "spot→full agree", num: 1 }],
      e.arms.map(function (a) {
        var m = a.behaviour;
        return [a.name, a.feedback, a.meta + " : " + a.task + (a.same_model ? " (same)" : " (cross)"),
          a.runs_finished + "/" + a.runs_total, f3(a.champion_test),
          a.champion_test_ci ? f3(a.champion_test_ci[0]) + "–" + f3(a.champion_test_ci[1]) : "-",
          f3(a.seed_test), signed(a.improvement), a.rollouts_to_best === null ? "-" : Math.round(a.rollouts_to_best),
          usd(a.usd_to_best), a.candidates_proposed, a.promoted, m.spot_checks + " / " + m.full_evals,
          m.followed_by_full ? m.agreements + "/" + m.followed_by_full : "-"];
      })));
    out.appendChild(h("h2", null, "Between arms"));
    if (!e.comparisons.length) out.appendChild(h("p", { class: "muted" }, "Only one arm: nothing to compare."));
    e.comparisons.forEach(function (c) {
      out.appendChild(h("div", { class: "sentence" + (c.distinguishable ? " yes" : "") }, c.sentence));
    });
    if (e.comparisons.length) {
      out.appendChild(table(["A", "B", { t: "mean A", num: 1 }, { t: "mean B", num: 1 }, { t: "A − B", num: 1 },
        { t: "95% CI", num: 1 }, { t: "p", num: 1 }, { t: "pairs", num: 1 }, "per seed"],
        e.comparisons.map(function (c) {
          return [c.arm_a, c.arm_b, f3(c.mean_a), f3(c.mean_b), signed(c.mean_diff), signed(c.ci_low) + ".." + signed(c.ci_high),
            Number(c.p_value).toPrecision(3), c.n_pairs,
            Object.keys(c.seed_diffs).sort().map(function (s) { return s + ": " + signed(c.seed_diffs[s]); }).join(", ")];
        })));
    }
    if (DATA.plots && Object.keys(DATA.plots).length) {
      out.appendChild(h("h2", null, "Plots"));
      Object.keys(DATA.plots).sort().forEach(function (k) { out.appendChild(h("p", null, h("img", { class: "plot", src: DATA.plots[k], alt: k }))); });
    }
    out.appendChild(h("h2", null, "Runs"));
    out.appendChild(table(["run", "arm", { t: "seed", num: 1 }, "status", { t: "seed test", num: 1 }, "champion",
      { t: "champion test", num: 1 }, { t: "improvement", num: 1 }, { t: "search rollouts", num: 1 }, "stop reason"],
      DATA.runs.map(function (run) {
        var s = run.summary;
        return [run.id, run.arm || "", s.seed, run.status || (s.finished ? "finished" : "unfinished"), f3(s.seed_test),
          s.champion_id, f3(s.champion_test), signed(s.improvement), s.rollouts, clip(s.stop_reason, 60)];
      }), function (i) { location.hash = hashFor("run", DATA.runs[i].id, "overview"); }));
    return out;
  }

  // ------------------------------------------------------------------ run overview

  function runOverview(run) {
    var s = run.summary;
    var out = h("div");
    out.appendChild(h("h1", null, "Run " + run.id));
    out.appendChild(h("p", { class: "muted" }, [s.benchmark, s.feedback ? "feedback " + s.feedback : null,
      s.meta_model ? "meta " + s.meta_model + (s.meta_temperature !== null ? " (t=" + s.meta_temperature + ")" : "") : null,
      s.task_model ? "task " + s.task_model + (s.task_temperature !== null ? " (t=" + s.task_temperature + ")" : "") : null,
      "seed " + s.seed, s.finished ? "finished" : "not finished"].filter(Boolean).join(" · ")));
    var cards = h("div", { class: "cards" });
    [["seed harness test", f3(s.seed_test)], ["champion test", f3(s.champion_test)], ["improvement", signed(s.improvement)],
      ["champion", s.champion_id], ["search rollouts", s.rollouts], ["rollouts to best", s.rollouts_to_best === null ? "-" : s.rollouts_to_best],
      ["candidates / promoted", s.candidates_proposed + " / " + s.promoted],
      ["spend", usd(s.task_usd + s.meta_usd)]].forEach(function (c) {
      cards.appendChild(h("div", { class: "card" }, h("div", { class: "k" }, c[0]), h("div", { class: "v" }, c[1])));
    });
    out.appendChild(cards);
    if (s.stop_reason) out.appendChild(h("p", { class: "muted" }, "Stopped: " + s.stop_reason));
    out.appendChild(h("h2", null, "Champion lineage"));
    var lin = h("div", { class: "panel" });
    run.lineage.forEach(function (cid, i) {
      var c = run.cands[cid];
      lin.appendChild(h("div", { style: "margin: 4px 0" }, i ? "↳ " : "",
        link(cid, hashFor("run", run.id, "cand", cid), { "data-testid": "lineage-" + cid }),
        " ", c.seed ? badge("seed", "info") : null, c.promoted ? badge("promoted", "good") : null,
        " search " + f3(c.search_score) + " · ", h("span", null, clip(c.hypothesis, 200))));
    });
    if (run.lineage.length <= 1) lin.appendChild(h("div", { class: "muted" }, "No change was accepted; the seed harness stayed champion."));
    out.appendChild(lin);
    out.appendChild(h("h2", null, "Evaluations (ledger)"));
    out.appendChild(table([{ t: "#", num: 1 }, { t: "iter", num: 1 }, "candidate", "kind", "split", { t: "tasks × trials", num: 1 },
      { t: "score", num: 1 }, { t: "charged", num: 1 }, { t: "reused", num: 1 }, { t: "tokens", num: 1 }, "decision", "status", "note"],
      run.ledger.map(function (r) {
        return [r.index, r.iter, r.candidate || "-", r.kind, r.split || "-", r.kind === "meta" ? "-" : r.n_tasks + " × " + r.trials,
          f3(r.score), r.charged, r.reused, r.tokens, r.decision, r.status, clip(r.note, 80)];
      }), function (i) { if (run.ledger[i].candidate) location.hash = hashFor("run", run.id, "cand", run.ledger[i].candidate); }));
    if (run.notebook) {
      out.appendChild(h("h2", null, "Notebook"));
      out.appendChild(pre(run.notebook));
    }
    return out;
  }

  // ------------------------------------------------------------------ candidates

  function candidateList(run, selected) {
    var side = h("div", { class: "sidebar" });
    var filters = h("div", { class: "filters" });
    var input = h("input", { type: "search", placeholder: "filter candidates (id, hypothesis)…", value: ui.candFilter });
    var list = h("div", { class: "list" });
    var show = h("select", { title: "show" });
    [["all", "all candidates"], ["promoted", "promoted"], ["evaluated", "fully evaluated"], ["flagged", "with findings"]].forEach(function (o) {
      show.appendChild(h("option", { value: o[0], selected: ui.candShow === o[0] }, o[1]));
    });
    function fill() {
      list.textContent = "";
      var q = ui.candFilter.toLowerCase();
      run.candidates.forEach(function (c) {
        if (q && (c.id + " " + c.hypothesis + " " + c.origin).toLowerCase().indexOf(q) < 0) return;
        if (ui.candShow === "promoted" && !c.promoted) return;
        if (ui.candShow === "evaluated" && c.search_score === null) return;
        if (ui.candShow === "flagged" && !c.findings.length) return;
        var item = h("div", { class: "item" + (c.id === selected ? " sel" : ""), "data-testid": "cand-" + c.id,
          onclick: function () { location.hash = hashFor("run", run.id, "cand", c.id); } },
          h("div", { class: "line1" }, h("span", { class: "id" }, c.id),
            h("span", null, c.champion ? badge("champion", "good") : null, c.promoted && !c.champion ? badge("promoted", "good") : null,
              c.seed ? badge("seed", "info") : null, c.findings.length ? badge("!", "warn", c.findings.join("; ")) : null,
              h("span", { class: "small muted" }, c.search_score === null ? "not evaluated" : f3(c.search_score)))),
          h("div", { class: "hyp" }, c.hypothesis || c.origin));
        list.appendChild(item);
      });
      if (!list.childNodes.length) list.appendChild(h("div", { class: "empty" }, "no candidate matches"));
    }
    input.addEventListener("input", function () { ui.candFilter = input.value; fill(); });
    show.addEventListener("change", function () { ui.candShow = show.value; fill(); });
    filters.appendChild(input);
    filters.appendChild(show);
    side.appendChild(filters);
    side.appendChild(list);
    fill();
    return side;
  }

  function candidateView(run, cid) {
    var c = run.cands[cid] || run.cands[run.summary.champion_id] || run.candidates[0];
    var wrap = h("div", { class: "split" });
    wrap.appendChild(candidateList(run, c && c.id));
    var main = h("div", { "data-testid": "candidate-detail" });
    wrap.appendChild(main);
    if (!c) { main.appendChild(h("div", { class: "empty" }, "no candidates")); return wrap; }
    main.appendChild(h("h1", null, "Candidate " + c.id, " ", c.champion ? badge("champion", "good") : null,
      c.promoted ? badge("promoted", "good") : null, c.seed ? badge("seed", "info") : null));
    main.appendChild(h("div", { class: "panel" }, kv([
      ["parent", c.parent ? link(c.parent, hashFor("run", run.id, "cand", c.parent)) : "-"],
      ["hypothesis", c.hypothesis || "-"],
      ["origin", c.origin || "-"],
      ["search score", f3(c.search_score)],
      c.test_score !== null ? ["held-out test", f3(c.test_score)] : null,
      c.decision ? ["promotion decision", c.decision] : null,
      c.findings.length ? ["static-check findings", c.findings.join("; ")] : null,
    ])));
    var evals = run.ledger.filter(function (r) { return r.candidate === c.id; });
    main.appendChild(h("h2", null, "Evaluations"));
    if (evals.length) {
      main.appendChild(table([{ t: "iter", num: 1 }, "kind", "split", { t: "tasks × trials", num: 1 }, { t: "score", num: 1 },
        { t: "charged", num: 1 }, { t: "reused", num: 1 }, "decision", "status", "note"],
        evals.map(function (r) { return [r.iter, r.kind, r.split, r.n_tasks + " × " + r.trials, f3(r.score), r.charged, r.reused, r.decision, r.status, clip(r.note, 100)]; })));
    } else main.appendChild(h("p", { class: "muted" }, "never evaluated"));
    main.appendChild(h("h2", null, "Code"));
    var seg = h("div", { class: "seg" });
    var codeBox = h("div");
    function showCode() {
      codeBox.textContent = "";
      codeBox.appendChild(ui.codeTab === "diff" ? diffPre(c.diff) : pre(c.source));
      seg.textContent = "";
      [["diff", "diff vs parent"], ["code", "full code"]].forEach(function (x) {
        seg.appendChild(h("a", { class: ui.codeTab === x[0] ? "on" : "", onclick: function () { ui.codeTab = x[0]; showCode(); } }, x[1]));
      });
    }
    showCode();
    main.appendChild(seg);
    main.appendChild(codeBox);
    main.appendChild(h("h2", null, "Rollouts"));
    main.appendChild(rolloutFilters(run, true));
    var rows = filteredRollouts(run, c.id);
    main.appendChild(rolloutTable(run, rows, "cand-rollouts"));
    return wrap;
  }

  // ------------------------------------------------------------------ rollouts

  function rolloutFilters(run, inCandidate) {
    var bar = h("div", { class: "toolbar" });
    function select(key, options, label) {
      var s = h("select", { title: label, "data-testid": "filter-" + key });
      options.forEach(function (o) { s.appendChild(h("option", { value: o[0], selected: ui[key] === o[0] }, o[1])); });
      s.addEventListener("change", function () { ui[key] = s.value; render(); });
      bar.appendChild(h("label", { class: "small muted" }, label + " "));
      bar.appendChild(s);
    }
    select("split", [["all", "all"], ["search", "search"], ["test", "test"], ["train", "train"]], "split");
    select("status", [["all", "all"], ["failed", "not passed"], ["pass", "pass"], ["fail", "fail"], ["partial", "partial"],
      ["error", "error"], ["timeout", "timeout"]], "outcome");
    if (!inCandidate) {
      select("cand", [["all", "all"]].concat(run.candidates.map(function (c) { return [c.id, c.id]; })), "candidate");
    }
    if (ui.query) {
      bar.appendChild(h("span", null, badge("search: " + ui.query, "info"),
        h("a", { onclick: function () { ui.query = ""; render(); } }, "clear")));
    }
    return bar;
  }

  function rolloutTable(run, rows, testid) {
    if (!rows.length) return h("div", { class: "empty" }, "no rollout matches these filters");
    var shown = rows.slice(0, 500);
    var t = table(["candidate", "task", { t: "trial", num: 1 }, "split", "outcome", { t: "score", num: 1 }, "answer",
      { t: "s", num: 1 }, { t: "tokens", num: 1 }],
      shown.map(function (r) {
        return [r.candidate_id, r.task_id, r.trial, r.split, statusBadge(r), f3(r.score), marked(clip(r.answer === null ? "<no answer>" : r.answer, 80)),
          Number(r.wall_s || 0).toFixed(1), (r.usage.prompt_tokens + r.usage.completion_tokens)];
      }), function (i) { location.hash = hashFor("run", run.id, "rollout", String(shown[i]._i)); });
    t.setAttribute("data-testid", testid);
    Array.prototype.forEach.call(t.querySelectorAll("tbody tr"), function (tr) { tr.setAttribute("data-testid", "rollout-row"); });
    var box = h("div", null, t);
    if (rows.length > shown.length) box.appendChild(h("p", { class: "muted" }, "showing 500 of " + rows.length + "; narrow the filters or search"));
    return box;
  }

  function rolloutsView(run) {
    var out = h("div");
    out.appendChild(h("h1", null, "Rollouts of " + run.id));
    out.appendChild(rolloutFilters(run, false));
    var rows = filteredRollouts(run, null);
    out.appendChild(h("p", { class: "muted" }, rows.length + " of " + run.rollouts.length + " rollouts"));
    out.appendChild(rolloutTable(run, rows, "all-rollouts"));
    return out;
  }

  function rolloutView(run, idx) {
    var t = run.rollouts[Number(idx)];
    var wrap = h("div", { class: "split" });
    if (!t) { wrap.appendChild(h("div", { class: "empty" }, "no such rollout")); return wrap; }
    // sidebar: the same candidate's rollouts under the current filters, for quick stepping
    var siblings = filteredRollouts(run, t.candidate_id);
    if (siblings.indexOf(t) < 0) siblings = run.rollouts.filter(function (x) { return x.candidate_id === t.candidate_id; });
    var side = h("div", { class: "sidebar" });
    side.appendChild(h("div", { class: "filters" }, h("span", null, "Rollouts of ",
      link(t.candidate_id, hashFor("run", run.id, "cand", t.candidate_id)), h("span", { class: "muted small" }, " (j / k to step)"))));
    var list = h("div", { class: "list" });
    siblings.slice(0, 500).forEach(function (x) {
      list.appendChild(h("div", { class: "item" + (x === t ? " sel" : ""), onclick: function () { location.hash = hashFor("run", run.id, "rollout", String(x._i)); } },
        h("div", { class: "line1" }, h("span", { class: "id small" }, x.task_id + " #" + x.trial), statusBadge(x)),
        h("div", { class: "hyp" }, x.split + " · " + clip(x.task_input, 90))));
    });
    side.appendChild(list);
    wrap.appendChild(side);
    var pos = siblings.indexOf(t);
    ui.step = function (d) {
      var n = siblings[pos + d];
      if (n) location.hash = hashFor("run", run.id, "rollout", String(n._i));
    };
    var main = h("div", { id: "trace", "data-testid": "trace" });
    wrap.appendChild(main);
    main.appendChild(h("h1", null, t.task_id + " · trial " + t.trial, " ", statusBadge(t), badge("score " + f3(t.score)), badge(t.split, "info"),
      t.reused_from ? badge("reused from " + t.reused_from, "warn") : null));
    main.appendChild(h("div", { class: "toolbar" },
      h("button", { onclick: function () { ui.step(-1); }, disabled: pos <= 0 }, "← previous"),
      h("button", { onclick: function () { ui.step(1); }, disabled: pos < 0 || pos >= siblings.length - 1 }, "next →"),
      h("span", { class: "muted small" }, "candidate ", link(t.candidate_id, hashFor("run", run.id, "cand", t.candidate_id)),
        " · model " + t.model + " · " + Number(t.wall_s || 0).toFixed(2) + " s · " + (t.usage.prompt_tokens + t.usage.completion_tokens) + " tokens · " + usd(t.usage.cost_usd))));
    main.appendChild(h("div", { class: "label" }, "input"));
    main.appendChild(pre(t.task_input));
    main.appendChild(h("div", { class: "label" }, "answer"));
    main.appendChild(pre(t.answer === null ? "<no answer>" : t.answer));
    if (t.explanation) { main.appendChild(h("div", { class: "label" }, "scorer")); main.appendChild(pre(t.explanation)); }
    if (t.error) {
      main.appendChild(h("div", { class: "label" }, "error"));
      main.appendChild(pre(t.error.type + ": " + t.error.message + (t.error.traceback ? "\n\n" + t.error.traceback : ""), "err"));
    }
    main.appendChild(h("h2", null, "Model calls (" + (t.model_calls || []).length + ")"));
    (t.model_calls || []).forEach(function (c, i) {
      var params = Object.keys(c.params || {}).filter(function (k) { return c.params[k] !== null && k !== "extra"; })
        .map(function (k) { return k + "=" + JSON.stringify(c.params[k]); }).join(" ");
      var d = h("details", { class: "call", open: true },
        h("summary", null, h("b", null, "#" + (i + 1) + " " + c.kind), badge(c.model), c.error ? badge("error", "bad") : null,
          h("span", { class: "muted small" }, Number(c.latency_s || 0).toFixed(2) + " s · " + c.prompt_tokens + "+" + c.completion_tokens + " tokens · " + params)));
      var body = h("div", { class: "body" });
      if (c.prompt !== null && c.prompt !== undefined) { body.appendChild(h("div", { class: "label" }, "prompt")); body.appendChild(pre(c.prompt)); }
      (c.messages || []).forEach(function (m) {
        body.appendChild(h("div", { class: "msg " + (m.role || "") }, h("div", { class: "label" }, m.role || "message"),
          pre(typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 1))));
      });
      body.appendChild(h("div", { class: "label" }, c.error ? "error" : "response"));
      body.appendChild(pre(c.error ? c.error : (c.response === null ? "<none>" : c.response), c.error ? "err" : null));
      d.appendChild(body);
      main.appendChild(d);
    });
    if ((t.tool_calls || []).length) {
      main.appendChild(h("h2", null, "Tool calls (" + t.tool_calls.length + ")"));
      t.tool_calls.forEach(function (c, i) {
        var d = h("details", { class: "call", open: t.tool_calls.length <= 6 },
          h("summary", null, h("b", null, "#" + (i + 1) + " " + c.name), c.error ? badge("error", "bad") : null,
            h("span", { class: "muted small" }, Number(c.latency_s || 0).toFixed(3) + " s")));
        var body = h("div", { class: "body" });
        body.appendChild(h("div", { class: "label" }, "args"));
        body.appendChild(pre(JSON.stringify(c.args, null, 1)));
        body.appendChild(h("div", { class: "label" }, c.error ? "error" : "result"));
        body.appendChild(pre(c.error ? c.error : (typeof c.result === "string" ? c.result : JSON.stringify(c.result, null, 1)), c.error ? "err" : null));
        d.appendChild(body);
        main.appendChild(d);
      });
    }
    if ((t.logs || []).length) {
      main.appendChild(h("h2", null, "Log"));
      main.appendChild(pre(t.logs.map(function (l) { return l.msg; }).join("\n")));
    }
    if (t.stdout) { main.appendChild(h("h2", null, "stdout")); main.appendChild(pre(t.stdout)); }
    if (t.stderr) { main.appendChild(h("h2", null, "stderr")); main.appendChild(pre(t.stderr, "err")); }
    return wrap;
  }

  // ------------------------------------------------------------------ meta-agent

  function metaView(run) {
    var out = h("div");
    var m = run.summary.behaviour;
    out.appendChild(h("h1", null, "Meta-agent of " + run.id));
    var cards = h("div", { class: "cards" });
    [["spot-checks", m.spot_checks + " (" + m.spot_rollouts + " rollouts)"], ["full evaluations", m.full_evals + " (" + m.full_rollouts + " rollouts)"],
      ["spot verdict = full verdict", m.followed_by_full ? m.agreements + " / " + m.followed_by_full : "-"],
      ["refused evaluations", m.refused], ["invalid actions", m.invalid_actions]].forEach(function (c) {
      cards.appendChild(h("div", { class: "card" }, h("div", { class: "k" }, c[0]), h("div", { class: "v" }, c[1])));
    });
    out.appendChild(cards);
    out.appendChild(h("p", { class: "muted" }, "Actions: " + (Object.keys(m.actions).sort().map(function (k) { return k + " " + m.actions[k]; }).join(", ") || "none recorded")));
    if (m.spots.length) {
      out.appendChild(h("h2", null, "Spot-checks and what the full evaluation said"));
      out.appendChild(table(["candidate", { t: "iter", num: 1 }, { t: "tasks × trials", num: 1 }, { t: "spot mean", num: 1 },
        { t: "champion, same tasks", num: 1 }, "spot says", { t: "full", num: 1 }, { t: "champion full", num: 1 }, "full says", "agree"],
        m.spots.map(function (o) {
          return [o.candidate, o.iter, o.tasks.length + " × " + o.trials, f3(o.spot_score), f3(o.champion_on_tasks),
            o.spot_says_better ? "better" : "not better", f3(o.full_score), f3(o.champion_full),
            o.full_says_better === null ? "-" : (o.full_says_better ? "better" : "not better") + (o.promoted ? " (promoted)" : ""),
            o.agree === null ? "-" : (o.agree ? badge("yes", "good") : badge("no", "bad"))];
        })));
    }
    var cal = run.summary.calibration;
    if (cal && cal.points.length) {
      var pct = function (n) { return cal.measured ? n + " (" + Math.round(100 * n / cal.measured) + "%)" : "-"; };
      var r2 = function (x) { return x === null ? "-" : (x >= 0 ? "+" : "") + x.toFixed(2); };
      out.appendChild(h("h2", null, "Predictions vs measured changes"));
      out.appendChild(h("p", { class: "muted" }, cal.measured + " of " + cal.proposals + " predictions measured (" + cal.by_full +
        " by a full evaluation, " + cal.by_spot + " by a spot-check); made things worse: " + pct(cal.worse) +
        "; direction predicted right: " + pct(cal.direction_right) + "; Pearson r " + r2(cal.pearson) + ", Spearman rho " + r2(cal.spearman)));
      out.appendChild(table(["candidate", "parent", "from", { t: "predicted", num: 1 }, { t: "measured", num: 1 }, "measured by"],
        cal.points.map(function (p) {
          return [p.candidate, p.parent || "-", p.what, r2(p.predicted), p.measured === null ? "-" : (p.measured >= 0 ? "+" : "") + p.measured.toFixed(3),
            p.basis || "not measured"];
        })));
    }
    out.appendChild(h("h2", null, "Decisions and events"));
    var tl = h("div", { class: "panel timeline" });
    run.events.forEach(function (e) {
      if (e.kind === "candidate" && !e.parent) return;
      var line = h("div", { class: "ev" }, badge("iter " + (e.iter === undefined ? "-" : e.iter)), badge(e.kind, e.kind === "promoted" ? "good" : (e.kind === "invalid_action" || e.kind === "meta_error" ? "bad" : "")));
      if (e.kind === "action") {
        add(line, [h("b", null, e.action + " "), h("span", { class: "small" }, JSON.stringify(e.args || {})),
          e.rationale ? h("div", { class: "small muted" }, "why: " + e.rationale) : null, pre(e.observation || "")]);
      } else {
        var rest = {};
        Object.keys(e).forEach(function (k) { if (["t", "kind", "iter"].indexOf(k) < 0) rest[k] = e[k]; });
        add(line, h("span", { class: "small" }, clip(JSON.stringify(rest), 400)));
        if (e.candidate && run.cands[e.candidate]) add(line, [" ", link("open " + e.candidate, hashFor("run", run.id, "cand", e.candidate))]);
      }
      tl.appendChild(line);
    });
    out.appendChild(tl);
    var iters = Object.keys(run.meta_transcripts || {}).sort();
    if (iters.length) {
      out.appendChild(h("h2", null, "Transcripts"));
      iters.forEach(function (it) {
        var msgs = run.meta_transcripts[it];
        var d = h("details", { class: "call" }, h("summary", null, h("b", null, "iteration " + Number(it)), h("span", { class: "muted small" }, msgs.length + " messages")));
        var body = h("div", { class: "body" });
        msgs.forEach(function (msg) {
          var content = typeof msg.content === "string" ? msg.content : JSON.stringify(msg.content);
          if (msg.role === "system") {
            body.appendChild(h("details", null, h("summary", { class: "small muted" }, "system prompt (" + content.length + " characters)"), pre(content)));
          } else body.appendChild(h("div", { class: "msg " + msg.role }, h("div", { class: "label" }, msg.role), pre(content)));
        });
        d.appendChild(body);
        out.appendChild(d);
      });
    }
    return out;
  }

  // ------------------------------------------------------------------ render

  function render() {
    var r = route();
    app.textContent = "";
    var top = document.querySelector("header.top");
    if (top) top.remove();
    document.body.insertBefore(header(r), app);
    var run = RUNS[r.run];
    var view;
    if (!r.run) {
      view = DATA.experiment ? experimentView() : (DATA.runs.length ? runOverview(DATA.runs[0]) : h("div", { class: "empty" }, "empty report"));
    } else if (!run) {
      view = h("div", { class: "empty" }, "unknown run " + r.run);
    } else if (r.view === "cands" || r.view === "cand") {
      view = candidateView(run, r.arg);
    } else if (r.view === "rollouts") {
      view = rolloutsView(run);
    } else if (r.view === "rollout") {
      view = rolloutView(run, r.arg);
    } else if (r.view === "meta") {
      view = metaView(run);
    } else {
      view = runOverview(run);
    }
    app.appendChild(view);
    var selected = app.querySelector(".sidebar .item.sel");
    if (selected) selected.scrollIntoView({ block: "nearest" });
    document.title = DATA.title + (r.run ? " · " + r.run : "");
  }

  document.addEventListener("keydown", function (e) {
    if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "SELECT" || e.target.tagName === "TEXTAREA")) return;
    if (route().view !== "rollout" || !ui.step) return;
    if (e.key === "j") { ui.step(1); e.preventDefault(); }
    if (e.key === "k") { ui.step(-1); e.preventDefault(); }
  });
  render();
})();
