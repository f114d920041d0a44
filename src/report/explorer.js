// segmix report explorer: hover a point for its row, click a class to filter, search and sort
// the rows, compare two classes. Reads the JSON in #segmix-data; user text only ever reaches
// the page through textContent. The page stays complete without this script.
(function () {
  "use strict";
  var el = document.getElementById("segmix-data");
  if (!el) return;
  var D = JSON.parse(el.textContent);
  var byRow = new Map();
  D.rows.forEach(function (r) { byRow.set(r.row, r); });
  var classes = new Map();
  D.classes.forEach(function (c) { classes.set(c.class, c); });
  var MAX_ROWS = 300;

  function h(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function pct(x) { return (100 * x).toFixed(0) + "%"; }

  // ---- tooltip on the maps
  var tip = document.getElementById("tip");
  function show(evt) {
    var t = evt.target;
    if (!t || t.tagName !== "circle" || !t.hasAttribute("data-row")) return;
    var r = byRow.get(Number(t.getAttribute("data-row")));
    if (!r) return;
    tip.textContent = "";
    var c = classes.get(r.class);
    var head = h("div", { "class": "tip-head" }, (c ? c.title : "Class " + r.class) + " · row " + r.row);
    head.style.borderColor = c ? c.color : "#999";
    tip.appendChild(head);
    tip.appendChild(h("div", { "class": "muted" }, "posterior " + r.posterior.toFixed(3)));
    if (r.text) tip.appendChild(h("div", { "class": "tip-text" }, r.text));
    (r.values || []).forEach(function (v, j) {
      tip.appendChild(h("div", { "class": "tip-val" }, D.columns[j] + " = " + (v === "" ? "(missing)" : v)));
    });
    var box = t.getBoundingClientRect();
    tip.style.left = Math.min(window.scrollX + box.right + 8, window.scrollX + document.documentElement.clientWidth - 330) + "px";
    tip.style.top = (window.scrollY + box.top + 8) + "px";
    tip.hidden = false;
  }
  document.querySelectorAll("svg.map").forEach(function (svg) {
    svg.addEventListener("mouseover", show);
    svg.addEventListener("click", show);
    svg.addEventListener("mouseleave", function () { tip.hidden = true; });
  });

  // ---- class filter: legend buttons and card titles
  var active = null;
  function filter(cls) {
    active = active === cls ? null : cls;
    document.querySelectorAll("svg.map circle[data-class]").forEach(function (p) {
      p.style.display = active === null || Number(p.getAttribute("data-class")) === active ? "" : "none";
    });
    document.querySelectorAll(".legend button").forEach(function (b) {
      b.classList.toggle("off", active !== null && Number(b.getAttribute("data-class")) !== active);
      b.setAttribute("aria-pressed", String(Number(b.getAttribute("data-class")) === active));
    });
    document.querySelectorAll("section.card").forEach(function (s) {
      s.classList.toggle("hl", Number(s.getAttribute("data-class")) === active);
    });
    var sel = document.getElementById("rows-class");
    if (sel) { sel.value = active === null ? "" : String(active); render(); }
  }
  document.querySelectorAll(".legend button[data-class]").forEach(function (b) {
    b.addEventListener("click", function () { filter(Number(b.getAttribute("data-class"))); });
  });
  document.querySelectorAll("section.card h3").forEach(function (t) {
    t.addEventListener("click", function () { filter(Number(t.parentNode.getAttribute("data-class"))); });
  });

  // ---- rows: search, class filter, sort
  var q = document.getElementById("rows-search"), cls = document.getElementById("rows-class");
  var body = document.getElementById("rows-body"), count = document.getElementById("rows-count");
  var sortKey = "posterior", sortDir = -1;
  var lower = D.rows.map(function (r) { return ((r.text || "") + " " + (r.values || []).join(" ")).toLowerCase(); });
  function value(r, key) {
    if (key === "row" || key === "class" || key === "posterior") return r[key];
    if (key === "text") return r.text || "";
    return (r.values || [])[Number(key)] || "";
  }
  function render() {
    if (!body) return;
    var needle = q.value.trim().toLowerCase(), want = cls.value === "" ? null : Number(cls.value);
    var hits = [];
    for (var i = 0; i < D.rows.length; i++) {
      var r = D.rows[i];
      if (want !== null && r.class !== want) continue;
      if (needle && lower[i].indexOf(needle) < 0) continue;
      hits.push(r);
    }
    hits.sort(function (a, b) {
      var x = value(a, sortKey), y = value(b, sortKey);
      return (x < y ? -1 : x > y ? 1 : a.row - b.row) * sortDir;
    });
    body.textContent = "";
    hits.slice(0, MAX_ROWS).forEach(function (r) {
      var tr = h("tr");
      var c = classes.get(r.class);
      tr.appendChild(h("td", { "class": "n" }, r.row));
      var td = h("td", null, c ? c.title : r.class);
      td.style.borderLeft = "4px solid " + (c ? c.color : "#999");
      tr.appendChild(td);
      tr.appendChild(h("td", { "class": "n" }, r.posterior.toFixed(3)));
      if (D.has_text) tr.appendChild(h("td", null, r.text || ""));
      (r.values || []).forEach(function (v) { tr.appendChild(h("td", null, v)); });
      body.appendChild(tr);
    });
    count.textContent = hits.length.toLocaleString("en") + " matching rows" +
      (hits.length > MAX_ROWS ? " (the first " + MAX_ROWS + " shown)" : "") + " · " + D.sample;
  }
  if (body) {
    q.addEventListener("input", render);
    cls.addEventListener("change", render);
    document.querySelectorAll("#rows-table th[data-key]").forEach(function (th) {
      th.addEventListener("click", function () {
        var k = th.getAttribute("data-key");
        sortDir = sortKey === k ? -sortDir : (k === "posterior" ? -1 : 1);
        sortKey = k;
        document.querySelectorAll("#rows-table th").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        render();
      });
    });
    render();
  }

  // ---- class vs class
  var ca = document.getElementById("cmp-a"), cb = document.getElementById("cmp-b"), out = document.getElementById("cmp-out");
  function words(list) { return (list || []).map(function (k) { return k.word; }).join(", ") || "—"; }
  function compare() {
    if (!out) return;
    var a = classes.get(Number(ca.value)), b = classes.get(Number(cb.value));
    out.textContent = "";
    if (!a || !b) return;
    var t = h("table", { "class": "cmp" });
    var head = h("tr");
    [["", null], [a.title, a.color], [b.title, b.color]].forEach(function (x) {
      var th = h("th", null, x[0]);
      if (x[1]) th.style.borderBottom = "3px solid " + x[1];
      head.appendChild(th);
    });
    t.appendChild(head);
    function row(label, x, y) {
      var tr = h("tr");
      tr.appendChild(h("th", null, label));
      tr.appendChild(h("td", null, x));
      tr.appendChild(h("td", null, y));
      t.appendChild(tr);
    }
    row("rows · weight", a.size + " · " + a.weight.toFixed(3), b.size + " · " + b.weight.toFixed(3));
    if (D.has_text) {
      row("what the embedding says", words(a.keywords), words(b.keywords));
      row("what the texts say", words(a.contrast), words(b.contrast));
    }
    Object.keys(a.categorical).forEach(function (col) {
      var la = a.categorical[col], lb = b.categorical[col] || [];
      la.forEach(function (l, i) {
        var other = lb[i] ? lb[i].share : 0;
        if (l.share < 0.05 && other < 0.05) return;
        row(col + " = " + l.level, pct(l.share), pct(other));
      });
    });
    Object.keys(a.metrics).forEach(function (m) {
      var x = a.metrics[m], y = b.metrics[m];
      row(m + " (mean ± sd)", x.mean.toPrecision(4) + " ± " + x.sd.toPrecision(3),
        y ? y.mean.toPrecision(4) + " ± " + y.sd.toPrecision(3) : "—");
    });
    out.appendChild(t);
  }
  if (out) {
    ca.addEventListener("change", compare);
    cb.addEventListener("change", compare);
    compare();
  }
  document.documentElement.setAttribute("data-explorer", "ready");
})();
