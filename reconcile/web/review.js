// Review page: one pair at a time, decisions written to the ledger at once.
// Everything from the data is inserted with textContent (never innerHTML): names such as
// =HYPERLINK(...) or <img onerror=...> stay inert text.
"use strict";
(function () {
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const T = boot.texts;
  const tr = (key, params) => {
    let s = T[key] !== undefined ? T[key] : key;
    if (params) for (const [k, v] of Object.entries(params)) s = s.split("{" + k + "}").join(String(v));
    return s;
  };
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  };

  const state = { items: [], index: -1, detail: null, busy: false, filters: { state: "", band: "", unit: "", outcome: "" } };

  async function api(path, body) {
    const opts = { headers: { "X-Review-Token": boot.token }, cache: "no-store" };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || r.status + " " + r.statusText);
    return data;
  }

  function toast(text, isErr) {
    const t = $("toast");
    t.textContent = text;
    t.className = "toast" + (isErr ? " err" : "");
  }

  const stateLabel = (it) => it.state === "decided" ? tr("web.decision_" + it.decision) : tr("web.state_" + it.state);
  const sourceLabel = (s) => tr("web.source_" + s);
  const fmtP = (p) => (p === null || p === undefined) ? "–" : (p * 100).toFixed(1) + "%";

  // ---- static texts
  function initTexts() {
    document.querySelectorAll("[data-t]").forEach((e) => { e.textContent = tr(e.getAttribute("data-t")); });
    $("title").textContent = tr("web.title");
    $("runinfo").textContent = tr("web.run_reviewer", { run: boot.run_id, reviewer: boot.reviewer });
    $("b-match").textContent = tr("web.btn_match");
    $("b-non").textContent = tr("web.btn_non_match");
    $("b-unsure").textContent = tr("web.btn_unsure");
    $("b-undo").textContent = tr("web.btn_undo");
    $("b-prev").textContent = tr("web.btn_prev");
    $("b-next").textContent = tr("web.btn_next");
    $("reason").placeholder = tr("web.reason_placeholder");
    $("keys").textContent = tr("web.keys_help");
    fillSelect($("f-state"), [["", tr("web.all")], ["todo", tr("web.state_todo")]].concat(boot.states.map((s) => [s, tr("web.state_" + s)])));
    fillSelect($("f-band"), [["", tr("web.all")]].concat(boot.bands.map((b) => [b, b.replace("-", "–") + "%"])));
    fillSelect($("f-outcome"), [["", tr("web.all")]].concat(boot.outcomes.map((o) => [o, tr("web.outcome_" + o)])));
    fillSelect($("f-unit"), [["", tr("web.all")]]);
  }

  function fillSelect(sel, options) {
    const keep = sel.value;
    sel.textContent = "";
    for (const [v, label] of options) {
      const o = el("option", null, label);
      o.value = v;
      sel.appendChild(o);
    }
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  }

  // ---- queue
  async function loadQueue(keepKey) {
    const q = new URLSearchParams(state.filters);
    const data = await api("api/queue?" + q.toString());
    state.items = data.items;
    fillSelect($("f-unit"), [["", tr("web.all")]].concat(data.units.map((u) => [u, u])));
    $("qcount").textContent = tr("web.queue_count", { shown: data.items.length, total: data.total });
    const c = $("counts");
    c.textContent = "";
    for (const s of boot.states) c.appendChild(el("span", "st-" + s, tr("web.state_" + s) + " " + data.counts[s]));
    renderQueue();
    let idx = 0;
    if (keepKey) {
      const found = state.items.findIndex((it) => it.sp === keepKey.sp && it.o === keepKey.o && it.d === keepKey.d);
      if (found >= 0) idx = found;
    }
    if (state.items.length) await show(idx);
    else showEmpty();
  }

  function renderQueue() {
    const ol = $("queue");
    ol.textContent = "";
    state.items.forEach((it, i) => {
      const li = el("li");
      li.dataset.index = i;
      li.dataset.state = it.state;
      li.dataset.decision = it.decision || "";
      li.dataset.key = it.sp + "|" + it.o + "|" + it.d;
      li.appendChild(el("span", "names", it.ln + " / " + it.rn));
      li.appendChild(el("span", "p", fmtP(it.p)));
      li.appendChild(el("span", "muted", it.unit));
      li.appendChild(el("span", "badge st-" + it.state + (it.decision ? " d-" + it.decision : ""), stateLabel(it)));
      if (i === state.index) li.classList.add("current");
      li.addEventListener("click", () => show(i));
      ol.appendChild(li);
    });
  }

  function updateQueueItem(i, detail) {
    const it = state.items[i];
    const d = detail.decision;
    it.decision = d ? d.decision : null;
    it.stale = detail.stale ? 1 : 0;
    if (!d) it.state = it.model === "match" ? "auto_match" : "waiting";
    else if (detail.stale) it.state = "stale";
    else it.state = d.decision === "unsure" ? "unsure" : "decided";
    const li = $("queue").children[i];
    if (!li) return;
    li.dataset.state = it.state;
    li.dataset.decision = it.decision || "";
    const badge = li.querySelector(".badge");
    badge.className = "badge st-" + it.state + (it.decision ? " d-" + it.decision : "");
    badge.textContent = stateLabel(it);
  }

  function showEmpty() {
    state.index = -1;
    state.detail = null;
    $("pairhead").textContent = tr("web.empty_queue");
    $("fields").querySelector("tbody").textContent = "";
    $("evidence").textContent = "";
    $("history").textContent = "";
    $("stale").hidden = true;
    $("clusterbox").hidden = true;
  }

  async function show(i) {
    if (i < 0 || i >= state.items.length) return;
    state.index = i;
    [...$("queue").children].forEach((li, j) => li.classList.toggle("current", j === i));
    const cur = $("queue").children[i];
    if (cur && cur.scrollIntoView) cur.scrollIntoView({ block: "nearest" });
    const it = state.items[i];
    const q = new URLSearchParams({ sp: it.sp, o: it.o, d: it.d });
    const detail = await api("api/pair?" + q.toString());
    if (state.index !== i) return; // the reviewer moved on meanwhile
    renderPair(detail);
  }

  // ---- one pair
  function segs(td, segments) {
    td.textContent = "";
    for (const [changed, text] of segments) td.appendChild(changed ? el("mark", "diff", text) : document.createTextNode(text));
  }

  function renderPair(d) {
    state.detail = d;
    $("reason").value = "";
    toast("");
    const head = $("pairhead");
    head.textContent = "";
    head.dataset.key = d.source_pair + "|" + d.origin_key + "|" + d.dest_key;
    head.appendChild(el("span", "prob", fmtP(d.match_probability)));
    head.appendChild(el("span", "muted", tr("web.position", { i: state.index + 1, n: state.items.length })));
    head.appendChild(el("span", null, tr("web.pair_kind_" + d.source_pair)));
    if (d.model_decision) head.appendChild(el("span", "muted", tr("web.model_decision") + ": " + tr("web.model_" + d.model_decision)));
    if (!d.in_links) head.appendChild(el("span", "muted", tr("web.not_in_links")));
    const dec = d.decision;
    const badge = el("span", "badge current-decision" + (dec ? " d-" + dec.decision : " st-waiting"),
      dec ? tr("web.decision_" + dec.decision) + " · " + dec.reviewer : tr("web.state_waiting"));
    badge.id = "current-decision";
    head.appendChild(badge);

    const st = $("stale");
    st.textContent = "";
    st.hidden = !d.stale;
    if (d.stale) {
      st.appendChild(el("strong", null, tr("web.stale_notice", { decision: tr("web.decision_" + dec.decision) })));
      for (const side of ["left", "right"]) {
        const ch = d.stale_changes[side] || [];
        if (!ch.length) continue;
        const ul = el("ul");
        for (const c of ch) ul.appendChild(el("li", null, tr("web.changed_field", { side: sourceLabel(side === "left" ? d.left_source : d.right_source), field: c.label, before: c.before || "∅", after: c.after || "∅" })));
        st.appendChild(ul);
      }
    }

    $("lefthead").textContent = sourceLabel(d.left_source) + " · " + d.origin_key;
    $("righthead").textContent = sourceLabel(d.right_source) + " · " + d.dest_key;
    const tbody = $("fields").querySelector("tbody");
    tbody.textContent = "";
    for (const f of d.fields) {
      if (!f.left && !f.right) continue;
      const tr_ = el("tr", (f.main ? "main" : "minor") + (f.differs ? " differs" : ""));
      tr_.dataset.field = f.field;
      tr_.appendChild(el("th", null, f.label));
      for (const side of ["left", "right"]) {
        const td = el("td", "v");
        td.dataset.side = side;
        const span = el("span", "val");
        segs(span, f[side + "_segs"]);
        td.appendChild(span);
        if (f.is_id && f[side] && f[side].includes("*")) {
          const b = el("button", "reveal", tr("web.reveal"));
          b.type = "button";
          b.dataset.side = side;
          b.addEventListener("click", () => doReveal(side));
          td.appendChild(b);
        }
        tr_.appendChild(td);
      }
      tbody.appendChild(tr_);
    }
    renderEvidence(d);
    renderCluster(d);
    renderRaw(d);
    const h = $("history");
    h.textContent = "";
    if (!d.history.length) h.appendChild(el("li", null, tr("web.no_history")));
    for (const x of d.history) {
      h.appendChild(el("li", null, tr("web.history_line", {
        at: x.decided_at, reviewer: x.reviewer, decision: tr("web.decision_" + x.decision), channel: x.channel,
        reason: x.reason ? "「" + x.reason + "」" : "",
      })));
    }
  }

  function renderEvidence(d) {
    const box = $("evidence");
    box.textContent = "";
    const ev = d.evidence;
    if (!ev.fields.length && ev.prior === null) { box.appendChild(el("p", "muted", tr("web.no_evidence"))); return; }
    // Waterfall: start at the prior, each field adds its weight; the last bar is the total.
    const steps = [];
    let cum = ev.prior || 0;
    if (ev.prior !== null) steps.push({ label: tr("web.prior"), level: "", from: 0, to: cum, w: cum, kind: cum >= 0 ? "pos" : "neg" });
    for (const f of ev.fields) {
      const w = f.weight || 0;
      steps.push({ label: f.label, level: f.level_label || f.level, from: cum, to: cum + w, w: f.weight, kind: w >= 0 ? "pos" : "neg" });
      cum += w;
    }
    if (ev.one_person !== null && ev.one_person !== undefined) {
      const w = ev.one_person;
      steps.push({ label: tr("web.one_person"), level: "", from: cum, to: cum + w, w: w, kind: w >= 0 ? "pos" : "neg" });
      cum += w;
    }
    steps.push({ label: tr("web.total"), level: fmtP(d.match_probability), from: 0, to: cum, w: cum, kind: "tot" });
    const lo = Math.min(0, ...steps.map((s) => Math.min(s.from, s.to)));
    const hi = Math.max(0, ...steps.map((s) => Math.max(s.from, s.to)));
    const W = 300, X0 = 250, RH = 20, pad = 4;
    const scale = (v) => X0 + ((v - lo) / ((hi - lo) || 1)) * W;
    const s = svg("svg", { width: X0 + W + 70, height: steps.length * RH + 10, role: "img", "aria-label": tr("web.evidence") });
    s.appendChild(svg("line", { x1: scale(0), x2: scale(0), y1: 0, y2: steps.length * RH + 4, class: "axis" }));
    steps.forEach((st, i) => {
      const y = i * RH + pad;
      const g = svg("g", { "data-field": st.label });
      g.appendChild(svg("text", { x: 0, y: y + 13 }, st.label + (st.level ? " · " + st.level : "")));
      const x1 = scale(Math.min(st.from, st.to)), x2 = scale(Math.max(st.from, st.to));
      g.appendChild(svg("rect", { x: x1, y: y + 2, width: Math.max(1, x2 - x1), height: RH - 6, class: st.kind }));
      g.appendChild(svg("text", { x: X0 + W + 6, y: y + 13 }, st.w === null || st.w === undefined ? "–" : (st.w >= 0 ? "+" : "") + Number(st.w).toFixed(2)));
      s.appendChild(g);
    });
    box.appendChild(s);
  }

  function renderCluster(d) {
    const box = $("clusterbox");
    box.hidden = !d.cluster.length;
    const t = $("cluster");
    t.querySelector("thead").textContent = "";
    t.querySelector("tbody").textContent = "";
    if (!d.cluster.length) return;
    const cols = ["cluster_id", "source", "record_key", "name", "sex", "birth_date", "id_number", "unit", "hukou_address", "survivor", "scope"];
    const hr = el("tr");
    for (const c of cols) hr.appendChild(el("th", null, tr("field." + c)));
    t.querySelector("thead").appendChild(hr);
    for (const m of d.cluster) {
      const r = el("tr");
      for (const c of cols) r.appendChild(el("td", null, c === "source" ? sourceLabel(m[c]) : (c === "survivor" ? (m[c] ? "✓" : "") : m[c])));
      t.querySelector("tbody").appendChild(r);
    }
  }

  function renderRaw(d) {
    for (const side of ["left", "right"]) {
      const t = $("raw" + side);
      t.textContent = "";
      for (const [k, v] of d.raw[side]) {
        const r = el("tr");
        r.appendChild(el("th", null, k));
        r.appendChild(el("td", null, v));
        t.appendChild(r);
      }
    }
  }

  // ---- actions
  function currentKey() {
    const d = state.detail;
    return d ? { source_pair: d.source_pair, origin_key: d.origin_key, dest_key: d.dest_key } : null;
  }

  async function decide(decision) {
    const key = currentKey();
    if (!key || state.busy) return;
    state.busy = true;
    const i = state.index;
    try {
      const res = await api("api/decide", Object.assign({ decision: decision, reason: $("reason").value }, key));
      updateQueueItem(i, res.pair);
      toast(tr("web.saved", { decision: tr("web.decision_" + decision) }));
      if (i + 1 < state.items.length) await show(i + 1);
      else { renderPair(res.pair); toast(tr("web.saved", { decision: tr("web.decision_" + decision) })); }
    } catch (e) {
      toast(tr("web.error", { detail: e.message }), true);
    } finally {
      state.busy = false;
    }
  }

  async function undo() {
    const key = currentKey();
    if (!key || state.busy) return;
    state.busy = true;
    try {
      const res = await api("api/undo", key);
      updateQueueItem(state.index, res.pair);
      renderPair(res.pair);
      toast(res.created ? tr("web.undone") : tr("web.nothing_to_undo"));
    } catch (e) {
      toast(tr("web.error", { detail: e.message }), true);
    } finally {
      state.busy = false;
    }
  }

  async function doReveal(side) {
    const key = currentKey();
    if (!key) return;
    try {
      const res = await api("api/reveal", Object.assign({ side: side }, key));
      for (const [field, v] of Object.entries(res)) {
        const row = $("fields").querySelector('tr[data-field="' + field + '"]');
        if (!row) continue;
        const td = row.querySelector('td[data-side="' + side + '"]');
        segs(td.querySelector(".val"), v.segs);
        const b = td.querySelector("button.reveal");
        if (b) { b.disabled = true; b.textContent = tr("web.revealed"); }
      }
    } catch (e) {
      toast(tr("web.error", { detail: e.message }), true);
    }
  }

  function move(delta) {
    const i = state.index + delta;
    if (i >= 0 && i < state.items.length) show(i);
  }

  function bind() {
    $("b-match").addEventListener("click", () => decide("match"));
    $("b-non").addEventListener("click", () => decide("non_match"));
    $("b-unsure").addEventListener("click", () => decide("unsure"));
    $("b-undo").addEventListener("click", undo);
    $("b-prev").addEventListener("click", () => move(-1));
    $("b-next").addEventListener("click", () => move(1));
    for (const [id, key] of [["f-state", "state"], ["f-band", "band"], ["f-unit", "unit"], ["f-outcome", "outcome"]]) {
      $(id).addEventListener("change", (e) => { state.filters[key] = e.target.value; loadQueue(); });
    }
    document.addEventListener("keydown", (e) => {
      const tag = (e.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "select" || tag === "textarea") {
        if (e.key === "Escape" || (e.key === "Enter" && e.target.id === "reason")) e.target.blur();
        return; // typing a reason never triggers a decision
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const k = e.key;
      if (k === "y" || k === "Y") { e.preventDefault(); decide("match"); }
      else if (k === "n" || k === "N") { e.preventDefault(); decide("non_match"); }
      else if (k === "u" || k === "U") { e.preventDefault(); decide("unsure"); }
      else if (k === "z" || k === "Z") { e.preventDefault(); undo(); }
      else if (k === "ArrowRight") { e.preventDefault(); move(1); }
      else if (k === "ArrowLeft") { e.preventDefault(); move(-1); }
      else if (k === "/") { e.preventDefault(); $("f-state").focus(); }
      else if (k === "r") { e.preventDefault(); $("reason").focus(); }
    });
  }

  initTexts();
  bind();
  loadQueue().then(() => { document.body.dataset.ready = "1"; }, (e) => toast(tr("web.error", { detail: e.message }), true));
})();
