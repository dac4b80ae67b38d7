/* Redemption Hub dashboard. Plain JavaScript, no build step.
 *
 * The API key lives in this tab's sessionStorage only (never in the URL, never in
 * localStorage) and goes to the hub as "Authorization: Bearer <key>". Every figure comes
 * from the API as it answers that key: a store key sees its own store.
 * All text reaches the page through textContent (never innerHTML): names and messages
 * from the API cannot inject markup. Charts are ECharts on canvas, tooltips in rich-text
 * mode (no HTML, no inline style: the page's Content-Security-Policy forbids both).
 */
"use strict";
(function () {
  var KEY_SLOT = "hub.dashboard.key";
  var LANG_SLOT = "hub.dashboard.lang";
  var WORDS = window.HubDashboardI18n;
  var COUNTS = ["issued", "claimed", "redeemed", "reversed", "net_redeemed"];
  var BREAKDOWNS = [
    ["store", "chart-by-store"],
    ["channel", "chart-by-channel"],
    ["online", "chart-by-online"],
    ["kind", "chart-by-kind"]
  ];
  var LIST_LIMIT = 10;

  var state = {
    lang: initialLanguage(),
    merchant: null,
    access: null,
    stores: [],
    generation: 0,
    data: {},
    charts: {}
  };

  // --- small helpers -------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function t(name, values) {
    var text = (WORDS[state.lang] && WORDS[state.lang][name]) || WORDS.en[name] || name;
    if (values) {
      Object.keys(values).forEach(function (k) { text = text.split("{" + k + "}").join(String(values[k])); });
    }
    return text;
  }

  function initialLanguage() {
    var saved = sessionStorage.getItem(LANG_SLOT);
    if (saved === "en" || saved === "zh") { return saved; }
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
    return String(langs[0] || "en").toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  }

  function groupDigits(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /** 12345 → "12,345"; null → "—". */
  function fmtCount(n) {
    if (n === null || n === undefined) { return "—"; }
    var s = String(Math.trunc(Number(n)));
    return s.charAt(0) === "-" ? "-" + groupDigits(s.slice(1)) : groupDigits(s);
  }

  /** Integer fen → "¥1,234.56" (integer arithmetic; never a float of the amount). */
  function fmtMoney(fen) {
    if (fen === null || fen === undefined) { return "—"; }
    var s = String(Math.round(Number(fen)));
    var neg = s.charAt(0) === "-";
    if (neg) { s = s.slice(1); }
    while (s.length < 3) { s = "0" + s; }
    return (neg ? "-" : "") + "¥" + groupDigits(s.slice(0, -2)) + "." + s.slice(-2);
  }

  /** Decimal string "0.4215" → "42.15%" (string arithmetic: exact); null → "—". */
  function fmtRate(rate) {
    if (rate === null || rate === undefined || rate === "") { return "—"; }
    var m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(String(rate));
    if (!m) { return String(rate); }
    var frac = (m[3] || "") + "0000";
    var whole = String(Number(m[2] + frac.slice(0, 2)));
    return m[1] + whole + "." + frac.slice(2, 4) + "%";
  }

  /** A decimal string ("700.0000") → at most two decimals, no trailing zeros ("700"). */
  function fmtDecimal(v) {
    if (v === null || v === undefined || v === "") { return "—"; }
    var m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(String(v));
    if (!m) { return String(v); }
    var cents = Math.round(Number("0." + ((m[3] || "") + "000").slice(0, 3)) * 100);
    var whole = m[2];
    if (cents === 100) { whole = String(Number(whole) + 1); cents = 0; }
    var frac = cents ? "." + (cents < 10 ? "0" + cents : String(cents)).replace(/0$/, "") : "";
    return m[1] + groupDigits(String(Number(whole))) + frac;
  }

  function fmtPlain(v) {
    return v === null || v === undefined ? "—" : String(v);
  }

  function fmtTime(iso) {
    if (!iso) { return "—"; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    var opts = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false };
    if (state.merchant && state.merchant.timezone) { opts.timeZone = state.merchant.timezone; }
    try {
      return new Intl.DateTimeFormat(state.lang === "zh" ? "zh-CN" : "en-GB", opts).format(d);
    } catch (e) {
      return d.toISOString();
    }
  }

  function yuan(fen) { return fen === null || fen === undefined ? 0 : Number(fen) / 100; }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  // --- the key and the API -------------------------------------------------------------

  function key() { return sessionStorage.getItem(KEY_SLOT); }

  function ApiError(status, code, detail) {
    this.status = status; this.code = code; this.detail = detail;
  }
  ApiError.prototype.toString = function () {
    return this.status + " " + (this.code || "") + (this.detail ? ": " + this.detail : "");
  };

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      var v = params[k];
      if (v !== undefined && v !== null && v !== "") {
        parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
      }
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function api(path, params, token) {
    return fetch(path + query(params || {}), {
      method: "GET",
      headers: { "Authorization": "Bearer " + (token || key()), "Accept": "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer"
    }).then(function (r) {
      return r.text().then(function (body) {
        var json = null;
        try { json = body ? JSON.parse(body) : null; } catch (e) { json = null; }
        if (!r.ok) {
          throw new ApiError(r.status, json && json.code, json && (json.detail || json.title));
        }
        return json;
      });
    });
  }

  // --- sign-in -------------------------------------------------------------------------

  function showSignIn(message) {
    $("signin").hidden = false;
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("merchant").textContent = "";
    var err = $("signin-error");
    err.hidden = !message;
    err.textContent = message || "";
    document.body.setAttribute("data-state", "signed-out");
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_SLOT);
    state.generation += 1;
    state.merchant = null;
    state.data = {};
    $("api-key").value = "";
    showSignIn(message);
  }

  function start(token) {
    document.body.setAttribute("data-state", "signing-in");
    return Promise.all([
      api("/v1/dashboard/access", {}, token), api("/v1/merchant", {}, token), api("/v1/stores", {}, token)
    ]).then(function (answers) {
      sessionStorage.setItem(KEY_SLOT, token);
      state.access = answers[0];
      state.merchant = answers[1];
      state.stores = (answers[2] && answers[2].items) || [];
      $("api-key").value = "";
      $("signin").hidden = true;
      $("board").hidden = false;
      $("sign-out").hidden = false;
      $("merchant").textContent = state.merchant.name + " · " + state.merchant.timezone;
      fillStores();
      ensureCharts();
      return reload();
    }, function (e) {
      if (e instanceof ApiError && e.status === 401) { signOut(t("signin_refused")); }
      else if (e instanceof ApiError && e.status === 403) { signOut(t("signin_forbidden")); }
      else { signOut(t("signin_failed") + String(e)); }
    });
  }

  function fillStores() {
    var select = $("f-store");
    while (select.options.length > 1) { select.remove(1); }
    state.stores.forEach(function (s) {
      var o = el("option", s.code + " " + s.name);
      o.value = s.code;
      select.appendChild(o);
    });
    // one store to see (a store key, or an analyst limited to one): no store filter
    $("f-store-label").hidden = state.stores.length <= 1;
    if (state.stores.length <= 1) { select.value = ""; }
  }

  // --- filters and loading -------------------------------------------------------------

  function filters() {
    return {
      from: $("f-from").value,
      to: $("f-to").value,
      store: $("f-store-label").hidden ? "" : $("f-store").value,
      channel: $("f-channel").value,
      kind: $("f-kind").value
    };
  }

  function settle(promise) {
    return promise.then(function (v) { return { ok: true, value: v }; },
                        function (e) { return { ok: false, error: e }; });
  }

  function reload() {
    var gen = ++state.generation;
    var f = filters();
    var group = $("f-group").value || "day";
    document.body.setAttribute("data-state", "loading");
    $("status").textContent = t("loading");
    var may = (state.access && state.access.panels) || {};
    // only what the key may read is asked for (a refused call would still be an error
    // in the browser's console); the other panels are hidden
    var requests = {};
    if (may.analytics) {
      requests.summary = api("/v1/analytics/summary", f);
      requests.series = api("/v1/analytics/series", Object.assign({ group: group }, f));
      requests.league = api("/v1/analytics/stores/league", f);
      requests.funnel = api("/v1/analytics/funnel", f);
      BREAKDOWNS.forEach(function (b) {
        requests["by_" + b[0]] = api("/v1/analytics/breakdown", Object.assign({ by: b[0] }, f));
      });
    }
    if (may.expiring) {
      requests.expiring = api("/v1/analytics/expiring", { days: 7, store: f.store, channel: f.channel, kind: f.kind });
    }
    if (may.alerts) { requests.alerts = api("/v1/alerts", { limit: LIST_LIMIT }); }
    if (may.conflicts) {
      requests.conflicts = api("/v1/conflicts", { status: "open", store: f.store, limit: LIST_LIMIT });
    }
    if (may.deliveries) { requests.dead = api("/v1/deliveries", { status: "dead", limit: LIST_LIMIT }); }
    var names = Object.keys(requests);
    return Promise.all(names.map(function (n) { return settle(requests[n]); })).then(function (results) {
      if (gen !== state.generation) { return; }  // a newer load started meanwhile
      var data = {};
      var failures = [];
      var refused = false;
      results.forEach(function (res, i) {
        var name = names[i];
        if (res.ok) { data[name] = { value: res.value }; return; }
        var e = res.error;
        if (e instanceof ApiError && e.status === 401) { refused = true; return; }
        if (e instanceof ApiError && e.status === 403) { data[name] = { forbidden: true }; return; }
        data[name] = { error: e };
        failures.push(name + " (" + String(e) + ")");
      });
      if (refused) { signOut(t("signin_refused")); return; }
      state.data = data;
      var summary = data.summary && data.summary.value;
      if (summary) {
        // the API's default range (the last 30 local days) becomes the filter's value
        if (!$("f-from").value && summary.from) { $("f-from").value = summary.from; }
        if (!$("f-to").value && summary.to) { $("f-to").value = summary.to; }
      }
      render();
      var err = $("load-error");
      err.hidden = failures.length === 0;
      err.textContent = failures.length ? t("load_failed") + failures.join("; ") : "";
      document.body.setAttribute("data-state", "ready");
      document.body.setAttribute("data-generation", String(gen));
    });
  }

  // --- rendering -----------------------------------------------------------------------

  function render() {
    renderTexts();
    renderStatus();
    renderFigures();
    renderSeries();
    BREAKDOWNS.forEach(function (b) { renderBreakdown(b[0], b[1]); });
    renderLeague();
    renderFunnel();
    renderExpiring();
    renderAlerts();
    renderConflicts();
    renderDead();
  }

  function renderTexts() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title");
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
  }

  function value(name) {
    var d = state.data[name];
    return d && d.value ? d.value : null;
  }

  function panel(id, name) {
    // a panel whose endpoint the key may not read (not asked, or refused) is hidden
    var d = state.data[name];
    $(id).hidden = !d || !!d.forbidden;
    return value(name);
  }

  function renderStatus() {
    var s = value("summary");
    $("status").textContent = s ? t("as_of", {
      as_of: fmtTime(s.as_of), lag: s.lag_seconds, from: s.from, to: s.to, tz: s.timezone
    }) : "";
  }

  function renderFigures() {
    var s = panel("panel-summary", "summary");
    var box = $("figures");
    box.textContent = "";
    if (!s) { return; }
    var f = s.figures || {};
    var within = f.redemption_rate_within || {};
    var ttr = f.time_to_redeem_days || {};
    var rows = [
      ["issued", t("f_issued"), fmtCount(f.issued)],
      ["claimed", t("f_claimed"), fmtCount(f.claimed)],
      ["redeemed", t("f_redeemed"), fmtCount(f.redeemed)],
      ["reversed", t("f_reversed"), fmtCount(f.reversed)],
      ["net_redeemed", t("f_net_redeemed"), fmtCount(f.net_redeemed)],
      ["redemption_rate", t("f_redemption_rate"), fmtRate(f.redemption_rate)],
      ["redemption_rate_within", t("f_redemption_rate_within", { days: fmtPlain(within.days) }), fmtRate(within.rate)],
      ["discount", t("f_discount"), fmtMoney(f.discount)],
      ["order_amount", t("f_order_amount"), fmtMoney(f.order_amount)],
      ["average_order_with_coupon", t("f_average_order_with_coupon"), fmtMoney(f.average_order_with_coupon)],
      ["average_order_without_coupon", t("f_average_order_without_coupon"), fmtMoney(f.average_order_without_coupon)],
      ["repeat_purchase_rate", t("f_repeat_purchase_rate", { days: fmtPlain(f.repeat_within_days) }), fmtRate(f.repeat_purchase_rate)],
      ["time_to_redeem_median", t("f_ttr_median"), fmtPlain(ttr.median)],
      ["time_to_redeem_p90", t("f_ttr_p90"), fmtPlain(ttr.p90)]
    ];
    rows.forEach(function (r) {
      var card = el("div", null, "figure");
      card.setAttribute("data-figure", r[0]);
      card.appendChild(el("span", r[1], "label"));
      var v = el("span", r[2], "value");
      v.id = "fig-" + r[0];
      card.appendChild(v);
      box.appendChild(card);
    });
  }

  function ensureCharts() {
    if (typeof echarts === "undefined") { return; }
    ["chart-series", "chart-by-store", "chart-by-channel", "chart-by-online", "chart-by-kind", "chart-funnel"].forEach(function (id) {
      if (!state.charts[id]) { state.charts[id] = echarts.init($(id), null, { renderer: "canvas" }); }
    });
  }

  function chart(id) {
    ensureCharts();
    var c = state.charts[id];
    if (c) { c.resize(); }
    return c;
  }

  var TOOLTIP = { trigger: "axis", renderMode: "richText", confine: true };

  function renderSeries() {
    var s = panel("panel-series", "series");
    var c = chart("chart-series");
    if (!c) { return; }
    var points = (s && s.points) || [];
    c.setOption({
      animation: false,
      tooltip: TOOLTIP,
      // issued and claimed come in campaign waves far above the daily redemptions: off
      // at first, a click on the legend shows them
      legend: { top: 0, selected: hiddenAtFirst() },
      grid: { left: 48, right: 24, top: 36, bottom: 32 },
      xAxis: { type: "category", data: points.map(function (p) { return p.period; }) },
      yAxis: { type: "value", minInterval: 1 },
      series: COUNTS.map(function (name) {
        return {
          id: name, name: t("s_" + name), type: name === "net_redeemed" ? "bar" : "line",
          data: points.map(function (p) { return p[name]; })
        };
      })
    }, true);
  }

  function hiddenAtFirst() {
    var off = {};
    off[t("s_issued")] = false;
    off[t("s_claimed")] = false;
    return off;
  }

  function keyLabel(by, row) {
    var words = WORDS[state.lang] || WORDS.en;
    if (by === "channel" && words["ch_" + row.key]) { return words["ch_" + row.key]; }
    if (by === "kind" && words["kind_" + row.key]) { return words["kind_" + row.key]; }
    if (by === "online" && words[row.key]) { return words[row.key]; }
    if (by === "store") { return row.key; }
    return row.label || row.key;
  }

  function renderBreakdown(by, id) {
    var b = panel("panel-by-" + by, "by_" + by);
    var c = chart(id);
    if (!c) { return; }
    var rows = (b && b.rows) || [];
    var labels = rows.map(function (r) { return keyLabel(by, r); });
    if (by === "online") {
      c.setOption({
        animation: false,
        tooltip: { trigger: "item", renderMode: "richText", confine: true },
        legend: { bottom: 0 },
        series: [{
          id: "net_redeemed", name: t("net_redeemed"), type: "pie", radius: ["35%", "65%"],
          label: { formatter: "{b}: {c}" },
          data: rows.map(function (r, i) { return { name: labels[i], value: r.net_redeemed }; })
        }]
      }, true);
      return;
    }
    c.setOption({
      animation: false,
      tooltip: TOOLTIP,
      legend: { top: 0 },
      grid: { left: 48, right: 48, top: 36, bottom: 40 },
      xAxis: { type: "category", data: labels, axisLabel: { interval: 0, rotate: labels.length > 6 ? 30 : 0 } },
      yAxis: [{ type: "value", minInterval: 1 }, { type: "value", splitLine: { show: false } }],
      series: [
        { id: "net_redeemed", name: t("net_redeemed"), type: "bar", data: rows.map(function (r) { return r.net_redeemed; }) },
        { id: "discount", name: t("discount_yuan"), type: "line", yAxisIndex: 1, data: rows.map(function (r) { return yuan(r.discount); }) }
      ]
    }, true);
  }

  function table(id, columns, rows, decorate) {
    var tbl = $(id);
    var head = tbl.tHead;
    var body = tbl.tBodies[0];
    head.textContent = "";
    body.textContent = "";
    var tr = el("tr");
    columns.forEach(function (c) { tr.appendChild(el("th", t(c[0]))); });
    head.appendChild(tr);
    if (!rows.length) {
      var empty = el("tr");
      var td = el("td", t("none"), "muted");
      td.colSpan = columns.length;
      empty.appendChild(td);
      body.appendChild(empty);
      return;
    }
    rows.forEach(function (row) {
      var r = el("tr");
      columns.forEach(function (c) { r.appendChild(el("td", c[1](row))); });
      if (decorate) { decorate(r, row); }
      body.appendChild(r);
    });
  }

  function renderLeague() {
    var l = panel("panel-league", "league");
    var rows = (l && l.rows) || [];
    var avg = (l && l.merchant_average) || {};
    $("league-note").textContent = l ? t("league_note", {
      margin: fmtRate(l.margin).replace("%", "").replace(/\.00$/, ""),
      avg: fmtDecimal(avg.net_redeemed),
      discount: avg.discount === null || avg.discount === undefined ? "—" : fmtMoney(Math.round(Number(avg.discount))),
      rate: fmtRate(avg.redemption_rate)
    }) : "";
    table("league", [
      ["c_rank", function (r) { return r.rank; }],
      ["c_store", function (r) { return r.store; }],
      ["c_name", function (r) { return r.name; }],
      ["c_net", function (r) { return fmtCount(r.net_redeemed); }],
      ["c_discount", function (r) { return fmtMoney(r.discount); }],
      ["c_order", function (r) { return fmtMoney(r.order_amount); }],
      ["c_rate", function (r) { return fmtRate(r.redemption_rate); }],
      ["c_status", function (r) { return r.lagging ? t("lagging") + (r.reason ? " · " + r.reason : "") : t("ok"); }]
    ], rows, function (tr, r) {
      tr.setAttribute("data-store", r.store);
      if (r.lagging) { tr.className = "lagging"; }
    });
  }

  function renderFunnel() {
    var f = panel("panel-funnel", "funnel");
    var c = chart("chart-funnel");
    if (!c) { return; }
    var steps = (f && f.steps) || [];
    c.setOption({
      animation: false,
      tooltip: { trigger: "item", renderMode: "richText", confine: true },
      series: [{
        id: "funnel", name: t("funnel"), type: "funnel", sort: "none", left: "10%", width: "80%",
        minSize: "10%", gap: 2,
        label: { position: "inside", formatter: "{b}: {c}" },
        data: steps.map(function (s) {
          return { name: t("step_" + s.step) + " " + fmtRate(s.rate_from_first), value: s.count };
        })
      }]
    }, true);
  }

  function renderExpiring() {
    var x = panel("panel-expiring", "expiring");
    $("expiring-total").textContent = x ? t("expiring_total", { n: fmtCount(x.total), days: x.days }) : "";
    table("expiring", [
      ["c_day", function (r) { return r.day; }],
      ["c_template", function (r) { return r.template_name || r.template_id; }],
      ["c_coupons", function (r) { return fmtCount(r.coupons); }]
    ], (x && x.rows) || []);
  }

  function renderAlerts() {
    var a = panel("panel-alerts", "alerts");
    table("alerts", [
      ["c_time", function (r) { return fmtTime(r.occurred_at); }],
      ["c_severity", function (r) { return t("sev_" + r.severity); }],
      ["c_alert", function (r) { return r.alert + (r.store ? " · " + r.store : ""); }],
      ["c_message", function (r) { return r.message; }]
    ], ((a && a.items) || []).slice(0, LIST_LIMIT), function (tr, r) {
      if (r.severity === "critical") { tr.className = "critical"; }
    });
  }

  function renderConflicts() {
    var c = panel("panel-conflicts", "conflicts");
    table("conflicts", [
      ["c_time", function (r) { return fmtTime(r.occurred_at); }],
      ["c_code", function (r) { return r.code; }],
      ["c_store", function (r) { return r.store; }],
      ["c_redeemed_store", function (r) { return (r.redeemed_store || "—") + " " + fmtTime(r.redeemed_at); }]
    ], ((c && c.items) || []).slice(0, LIST_LIMIT));
  }

  function renderDead() {
    var d = panel("panel-dead", "dead");
    table("dead", [
      ["c_time", function (r) { return fmtTime(r.updated_at); }],
      ["c_event", function (r) { return r.event_type; }],
      ["c_attempts", function (r) { return r.attempts; }],
      ["c_last", function (r) { return (r.last_status ? r.last_status + " " : "") + (r.last_error || ""); }]
    ], ((d && d.items) || []).slice(0, LIST_LIMIT));
  }

  // --- wiring --------------------------------------------------------------------------

  function setLanguage(lang) {
    state.lang = lang;
    sessionStorage.setItem(LANG_SLOT, lang);
    renderTexts();
    if (state.merchant) { render(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    renderTexts();
    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();  // never submitted: the key must not reach a URL
      var token = $("api-key").value.trim();
      if (!token) { showSignIn(t("signin_empty")); return; }
      start(token);
    });
    $("sign-out").addEventListener("click", function () { signOut(""); });
    $("lang-toggle").addEventListener("click", function () { setLanguage(state.lang === "zh" ? "en" : "zh"); });
    ["f-from", "f-to", "f-store", "f-channel", "f-kind", "f-group"].forEach(function (id) {
      $(id).addEventListener("change", function () { reload(); });
    });
    $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); reload(); });
    window.addEventListener("resize", function () {
      Object.keys(state.charts).forEach(function (id) { state.charts[id].resize(); });
    });
    var saved = key();
    if (saved) { start(saved); } else { showSignIn(""); }
  });
})();
