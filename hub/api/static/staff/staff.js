/* Redemption Hub staff page: redeem coupons from a phone. Plain JavaScript, no build step.
 *
 * Security: the staff session's token lives in this tab's sessionStorage only (never in
 * the URL, never in localStorage, never in a cookie) and goes to the hub as
 * "Authorization: Bearer <token>". All text reaches the page through textContent (never
 * innerHTML): names and messages from the API cannot inject markup. No inline script or
 * style (the page's Content-Security-Policy forbids both).
 *
 * Exactly once: a redemption is one intent (the coupon, the order amount and lines, the
 * order id); its Idempotency-Key is made once per intent (crypto.randomUUID) and sent again
 * when the same intent is retried after a network failure, so a retry can never redeem
 * twice; a changed order is a new intent with a new key.
 */
"use strict";
(function () {
  var SESSION_SLOT = "hub.staff.session";
  var PENDING_SLOT = "hub.staff.pending";
  var LANG_SLOT = "hub.staff.lang";
  var WORDS = window.HubStaffI18n;
  var SCRIPT = document.getElementById("staff-script");
  var ASSETS = (SCRIPT && SCRIPT.getAttribute("data-assets")) || "/staff/assets";
  var SCAN_EVERY_MS = 200;
  var TODAY_LIMIT = 200;
  var CODE_LENGTH = 14;
  // the hub's code normalisation (hub/domain/codes.py normalize): after NFKC, whitespace,
  // invisible format characters and dashes of every kind are grouping; letters upper-cased
  var GROUPING = /[\s\p{Pd}\p{Cf}\p{Zs}\p{Zl}\p{Zp}\u2212\u2043\u207b\u208b\u30fc\uff70]/gu;
  var TOKEN_PREFIX = "HT1.";

  var state = {
    lang: initialLanguage(),
    screen: "loading",
    session: readSession(),
    coupon: null,       // GET /v1/coupons/{code}
    template: null,     // GET /v1/templates/{id} (benefit, usage rules), when readable
    orderId: null,      // the order id of the coupon on screen (one per coupon shown)
    validated: null,    // the body validate accepted (JSON text)
    pending: readPending(),  // {key, body}: the redeem intent not yet answered
    messages: {},       // element id → function giving its text (re-said on a language switch)
    reversing: null,    // the redemption the confirm box is about
    reversalKeys: {},   // redemption id → Idempotency-Key of its reversal (reused on retry)
    expiryTimer: null
  };
  var scanner = { stream: null, timer: null, reader: null, busy: false, generation: 0 };

  // --- small helpers -------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function t(name, values) {
    var text = (WORDS[state.lang] && WORDS[state.lang][name]) || WORDS.en[name] || name;
    if (values) {
      Object.keys(values).forEach(function (k) {
        text = text.split("{" + k + "}").join(String(values[k]));
      });
    }
    return text;
  }

  function initialLanguage() {
    var saved = sessionStorage.getItem(LANG_SLOT);
    if (saved === "en" || saved === "zh") { return saved; }
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
    return String(langs[0] || "en").toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  /** A random UUID for an Idempotency-Key (crypto.randomUUID where the page is a secure
   * context; the same version-4 layout from crypto.getRandomValues otherwise). */
  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") { return window.crypto.randomUUID(); }
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  /** What was typed or scanned, as the hub reads it: a coupon token (HT1.…, case matters)
   * untouched but trimmed; anything else normalised like hub/domain/codes.py. */
  function normalizeCode(raw) {
    var text = String(raw || "").trim();
    if (text.indexOf(TOKEN_PREFIX) === 0) { return text; }
    return text.normalize("NFKC").replace(GROUPING, "").toUpperCase();
  }

  function groupCode(code) {
    if (!code || code.indexOf(TOKEN_PREFIX) === 0) { return code || ""; }
    return code.match(/.{1,4}/g).join("-");
  }

  function groupDigits(digits) { return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  /** Integer fen → "1,234.56" (integer arithmetic; never a float of the amount). */
  function yuan(fen) {
    if (fen === null || fen === undefined) { return "—"; }
    var s = String(Math.round(Number(fen)));
    var neg = s.charAt(0) === "-";
    if (neg) { s = s.slice(1); }
    while (s.length < 3) { s = "0" + s; }
    return (neg ? "-" : "") + groupDigits(s.slice(0, -2)) + "." + s.slice(-2);
  }

  /** "128", "128.5", "128.50", "１２８" → fen as an integer; anything else → null. */
  function parseYuan(raw) {
    var text = String(raw || "").normalize("NFKC").replace(/[\s,¥￥]/g, "");
    var m = /^(\d{1,10})(?:\.(\d{0,2}))?$/.exec(text);
    if (!m) { return null; }
    return parseInt(m[1] + ((m[2] || "") + "00").slice(0, 2), 10);
  }

  function fmtTime(iso, withDate) {
    if (!iso) { return "—"; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    var opts = { hour: "2-digit", minute: "2-digit", hour12: false };
    if (withDate !== false) { opts.year = "numeric"; opts.month = "2-digit"; opts.day = "2-digit"; }
    var tz = state.session && state.session.merchant && state.session.merchant.timezone;
    if (tz) { opts.timeZone = tz; }
    try {
      return new Intl.DateTimeFormat(state.lang === "zh" ? "zh-CN" : "en-GB", opts).format(d);
    } catch (e) {
      return d.toISOString();
    }
  }

  /** The start of today in the merchant's time zone, as an ISO 8601 UTC time. */
  function startOfToday() {
    var tz = (state.session && state.session.merchant && state.session.merchant.timezone) || "UTC";
    function parts(when) {
      var out = {};
      new Intl.DateTimeFormat("en-US", {
        timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit"
      }).formatToParts(when).forEach(function (p) { out[p.type] = Number(p.value); });
      return out;
    }
    try {
      var today = parts(new Date());
      var target = Date.UTC(today.year, today.month - 1, today.day);
      var guess = target;
      for (var i = 0; i < 3; i += 1) {
        var p = parts(new Date(guess));
        var asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second);
        guess = target - (asUtc - guess);
      }
      return new Date(guess).toISOString();
    } catch (e) {
      var now = new Date();
      return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())).toISOString();
    }
  }

  // --- messages (kept as functions, so a language switch says them again) ---------------

  function say(id, text, code) {
    var node = $(id);
    if (!node) { return; }
    if (!text) {
      delete state.messages[id];
      node.textContent = "";
      node.hidden = true;
      node.removeAttribute("data-code");
      return;
    }
    state.messages[id] = text;
    node.textContent = text();
    node.hidden = false;
    if (code) { node.setAttribute("data-code", code); } else { node.removeAttribute("data-code"); }
  }

  function sayWords(id, name, values) { say(id, function () { return t(name, values); }); }

  function applyWords() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = t("title") + " — Redemption Hub";
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n]"), function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-i18n-ph]"), function (node) {
      node.setAttribute("placeholder", t(node.getAttribute("data-i18n-ph")));
    });
    Object.keys(state.messages).forEach(function (id) {
      var node = $(id);
      if (node) { node.textContent = state.messages[id](); }
    });
    renderWho();
    if (state.screen === "coupon") { renderCoupon(); }
    if (state.screen === "today" && state.todayItems) { renderToday(state.todayItems); }
  }

  // --- the API -------------------------------------------------------------------------

  function ApiError(status, code, detail, extra) {
    this.status = status; this.code = code; this.detail = detail; this.extra = extra || {};
  }
  function NetworkError(cause) { this.network = true; this.cause = cause; }

  function setOffline(down) {
    $("offline").hidden = !down;
    document.body.setAttribute("data-network", down ? "down" : "up");
  }

  /** fetch against the hub with the session's token; resolves to the JSON body (or null),
   * rejects with ApiError (a refusal) or NetworkError (nothing reached the hub or the
   * answer was lost). */
  function api(method, path, body, headers) {
    var h = { "Accept": "application/json" };
    if (state.session && state.session.token) { h.Authorization = "Bearer " + state.session.token; }
    if (body !== undefined) { h["Content-Type"] = "application/json"; }
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    return fetch(path, {
      method: method,
      headers: h,
      body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer"
    }).then(function (r) {
      setOffline(false);
      return r.text().then(function (text) {
        var data = null;
        if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
        if (r.ok) { return data; }
        var d = data || {};
        throw new ApiError(r.status, d.code || "http_" + r.status, d.detail || d.title || r.statusText, d);
      });
    }, function (err) {
      setOffline(true);
      throw new NetworkError(err);
    });
  }

  /** A refusal in the page's words (both languages); the API's own detail as a fallback. */
  function describe(err) {
    if (err && err.network) { return function () { return t("network_failed_read"); }; }
    if (!(err instanceof ApiError)) { return function () { return t("ERR_other", { detail: String(err) }); }; }
    var code = err.code;
    if (code === "coupon_already_redeemed") {
      return function () {
        var text = t("ERR_coupon_already_redeemed");
        if (err.extra.redeemed_store || err.extra.redeemed_at) {
          text += " " + t("ERR_coupon_already_redeemed_at", {
            store: err.extra.redeemed_store || "—", when: fmtTime(err.extra.redeemed_at)
          });
        }
        return text;
      };
    }
    if (WORDS.en["ERR_" + code]) {
      return function () { return t("ERR_" + code, { detail: err.detail || "" }); };
    }
    return function () { return t("ERR_other", { detail: err.detail || code }); };
  }

  function showError(id, err) { say(id, describe(err), err && err.network ? "network" : err && err.code); }

  /** A 401 of the session itself (ended, expired, staff disabled): sign out here too. */
  function sessionGone(err) {
    if (err instanceof ApiError && err.status === 401 && state.session) {
      endSession(describe(err));
      return true;
    }
    return false;
  }

  // --- session -------------------------------------------------------------------------

  function readSession() {
    try {
      var s = JSON.parse(sessionStorage.getItem(SESSION_SLOT) || "null");
      if (s && s.token && (!s.expires_at || new Date(s.expires_at).getTime() > Date.now())) { return s; }
    } catch (e) { /* a damaged slot: signed out */ }
    sessionStorage.removeItem(SESSION_SLOT);
    return null;
  }

  function readPending() {
    try { return JSON.parse(sessionStorage.getItem(PENDING_SLOT) || "null"); } catch (e) { return null; }
  }

  function setPending(p) {
    state.pending = p;
    if (p) { sessionStorage.setItem(PENDING_SLOT, JSON.stringify(p)); } else { sessionStorage.removeItem(PENDING_SLOT); }
  }

  function renderWho() {
    var s = state.session;
    $("who").textContent = s ? t("who", {
      name: (s.staff && s.staff.name) || "", store: (s.store && (s.store.name || s.store.code)) || ""
    }) : "";
    $("sign-out").hidden = !s;
  }

  function startSession(s) {
    state.session = s;
    sessionStorage.setItem(SESSION_SLOT, JSON.stringify(s));
    armExpiry();
    renderWho();
  }

  function armExpiry() {
    if (state.expiryTimer) { clearTimeout(state.expiryTimer); state.expiryTimer = null; }
    var s = state.session;
    if (!s || !s.expires_at) { return; }
    var left = new Date(s.expires_at).getTime() - Date.now();
    if (left < 2147483647) {
      state.expiryTimer = setTimeout(function () { endSession(function () { return t("session_over"); }); }, Math.max(0, left));
    }
  }

  function endSession(message) {
    stopScanner();
    state.session = null;
    state.coupon = null;
    setPending(null);
    sessionStorage.removeItem(SESSION_SLOT);
    if (state.expiryTimer) { clearTimeout(state.expiryTimer); state.expiryTimer = null; }
    renderWho();
    show("signin");
    say("signin-error", message || null);
  }

  function signIn(ev) {
    ev.preventDefault();
    var code = normalizeCode($("signin-code").value);
    if (!code) { sayWords("signin-error", "signin_empty"); return; }
    if (!/^[0-9A-Z]{8}$/.test(code)) { sayWords("signin-error", "signin_shape"); return; }
    say("signin-error", null);
    $("signin-submit").disabled = true;
    api("POST", "/v1/staff/sessions", { code: code }).then(function (body) {
      $("signin-code").value = "";
      startSession(body);
      toScan();
    }, function (err) {
      showError("signin-error", err);
    }).then(function () { $("signin-submit").disabled = false; });
  }

  function signOut() {
    var s = state.session;
    if (s) {
      // best effort: the token is forgotten here whatever the hub answers
      api("DELETE", "/v1/staff/sessions/current").catch(function () { return null; });
    }
    endSession(null);
  }

  // --- screens -------------------------------------------------------------------------

  function show(name) {
    if (state.screen === "scan" && name !== "scan") { stopScanner(); }
    state.screen = name;
    ["signin", "scan", "coupon", "result", "today"].forEach(function (s) {
      $("screen-" + s).hidden = s !== name;
    });
    document.body.setAttribute("data-screen", name);
    window.scrollTo(0, 0);
  }

  function toScan() {
    say("scan-error", null);
    $("manual-code").value = "";
    show("scan");
    startScanner();
  }

  // --- the camera and the QR reader ------------------------------------------------------

  function cameraStatus(name, values) { sayWords("camera-status", name, values); }

  function makeReader() {
    var video = $("camera");
    var useZxing = function () {
      if (!window.ZXingWASM) { return Promise.reject(new Error("no reader")); }
      var ready = window.ZXingWASM.prepareZXingModule({
        overrides: {
          // the vendored .wasm next to the script, never the library's default CDN
          locateFile: function (path, prefix) {
            return /\.wasm$/.test(path) ? ASSETS + "/zxing/" + path : prefix + path;
          }
        },
        fireImmediately: true
      });
      var canvas = document.createElement("canvas");
      var ctx = canvas.getContext("2d", { willReadFrequently: true });
      return Promise.resolve(ready).then(function () {
        document.body.setAttribute("data-reader", "zxing-wasm");
        return function () {
          var w = video.videoWidth, h = video.videoHeight;
          if (!w || !h) { return Promise.resolve(null); }
          var scale = Math.min(1, 800 / Math.max(w, h));
          canvas.width = Math.round(w * scale); canvas.height = Math.round(h * scale);
          ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
          var image = ctx.getImageData(0, 0, canvas.width, canvas.height);
          return window.ZXingWASM.readBarcodes(image, {
            formats: ["QRCode"], tryHarder: true, maxNumberOfSymbols: 1
          }).then(function (found) {
            return found.length && found[0].isValid ? found[0].text : null;
          });
        };
      });
    };
    if ("BarcodeDetector" in window) {
      return window.BarcodeDetector.getSupportedFormats().then(function (formats) {
        if (formats.indexOf("qr_code") < 0) { return useZxing(); }
        var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
        document.body.setAttribute("data-reader", "barcode-detector");
        return function () {
          if (!video.videoWidth) { return Promise.resolve(null); }
          return detector.detect(video).then(function (found) {
            return found.length ? found[0].rawValue : null;
          });
        };
      }, useZxing);
    }
    return useZxing();
  }

  function startScanner() {
    var generation = ++scanner.generation;
    var video = $("camera");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraStatus("camera_none");
      return;
    }
    cameraStatus("camera_starting");
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false }).then(function (stream) {
      if (generation !== scanner.generation || state.screen !== "scan") {
        stream.getTracks().forEach(function (tr) { tr.stop(); });
        return;
      }
      scanner.stream = stream;
      video.srcObject = stream;
      var playing = video.play();
      return Promise.resolve(playing).catch(function () { return null; }).then(function () {
        return scanner.reader || makeReader();
      }).then(function (reader) {
        scanner.reader = reader;
        if (generation !== scanner.generation) { return; }
        cameraStatus("camera_ready");
        document.body.setAttribute("data-camera", "on");
        scanner.timer = setInterval(function () { scanOnce(generation); }, SCAN_EVERY_MS);
      }, function () {
        if (generation === scanner.generation) { cameraStatus("reader_failed"); }
      });
    }, function (err) {
      if (generation === scanner.generation) {
        cameraStatus("camera_denied", { why: (err && err.name) || "error" });
      }
    });
  }

  function scanOnce(generation) {
    if (scanner.busy || !scanner.reader || generation !== scanner.generation) { return; }
    scanner.busy = true;
    scanner.reader().then(function (text) {
      scanner.busy = false;
      if (text && generation === scanner.generation && state.screen === "scan") {
        stopScanner();
        lookUp(text, "scan");
      }
    }, function () { scanner.busy = false; });
  }

  function stopScanner() {
    scanner.generation += 1;
    if (scanner.timer) { clearInterval(scanner.timer); scanner.timer = null; }
    if (scanner.stream) {
      scanner.stream.getTracks().forEach(function (tr) { tr.stop(); });
      scanner.stream = null;
    }
    var video = $("camera");
    if (video) { video.srcObject = null; }
    document.body.setAttribute("data-camera", "off");
  }

  // --- the coupon ------------------------------------------------------------------------

  function lookUp(raw, how) {
    var code = normalizeCode(raw);
    if (!code) { sayWords("scan-error", "code_empty"); return; }
    say("scan-error", null);
    $("manual-submit").disabled = true;
    document.body.setAttribute("data-busy", "lookup");
    var found;
    api("GET", "/v1/coupons/" + encodeURIComponent(code)).then(function (coupon) {
      found = coupon;
      return api("GET", "/v1/templates/" + encodeURIComponent(coupon.template.id)).catch(function (err) {
        if (err && err.network) { throw err; }
        return null;  // the rules stay unknown; the hub still checks them
      });
    }).then(function (template) {
      openCoupon(found, template, how);
    }, function (err) {
      if (sessionGone(err)) { return; }
      if (state.screen !== "scan") { toScan(); }
      showError("scan-error", err);
      if (how === "scan" && !(err && err.network)) {
        // a refused scan: show why, and keep scanning for the next code
        startScanner();
      }
    }).then(function () {
      $("manual-submit").disabled = false;
      document.body.removeAttribute("data-busy");
    });
  }

  function needsLines() {
    var tpl = state.template;
    if (!tpl) { return false; }
    var u = tpl.usage || {};
    return tpl.kind === "exchange" || (u.skus && u.skus.length > 0) || (u.categories && u.categories.length > 0);
  }

  function openCoupon(coupon, template, how) {
    state.coupon = coupon;
    state.template = template;
    state.orderId = "STAFF-" + uuid().replace(/-/g, "").slice(0, 12).toUpperCase();
    state.validated = null;
    $("amount").value = "";
    $("lines").textContent = "";
    $("lines-box").hidden = !needsLines();
    if (needsLines()) { addLine(); }
    say("coupon-error", null);
    $("verdict").hidden = true;
    $("confirm").hidden = true;
    $("retry").hidden = true;
    document.body.setAttribute("data-found-by", how || "typed");
    show("coupon");
    renderCoupon();
    var refusal = { redeemed: "coupon_already_redeemed", expired: "coupon_expired", voided: "coupon_voided" }[coupon.status];
    if (refusal) {
      var used = null;
      (coupon.history || []).forEach(function (e) { if (e.type === "coupon.redeemed") { used = e; } });
      showError("coupon-error", new ApiError(422, refusal, "", used ? {
        redeemed_store: used.store, redeemed_at: used.at
      } : {}));
    }
    $("amount").focus();
  }

  function benefitText(tpl) {
    var b = tpl && tpl.benefit;
    if (!b) { return ""; }
    if (b.kind === "threshold") {
      return t("b_threshold", { discount: yuan(b.discount), threshold: yuan(b.threshold) });
    }
    if (b.kind === "percentage") {
      return t("b_percentage", {
        percent: b.percent_off,
        threshold_text: b.threshold ? t("b_percentage_threshold", { threshold: yuan(b.threshold) }) : "",
        cap_text: b.cap ? t("b_percentage_cap", { cap: yuan(b.cap) }) : ""
      });
    }
    if (b.kind === "exchange") {
      return t("b_exchange", {
        qty: b.qty, sku: b.sku,
        threshold_text: b.threshold ? t("b_exchange_threshold", { threshold: yuan(b.threshold) }) : ""
      });
    }
    return "";
  }

  function renderCoupon() {
    var c = state.coupon;
    if (!c) { return; }
    $("c-state").textContent = t("st_" + c.status);
    $("c-state").className = "state state-" + c.status;
    $("c-name").textContent = c.template.name;
    $("c-benefit").textContent = benefitText(state.template);
    $("c-code").textContent = c.display_code || groupCode(c.code);
    $("c-validity").textContent = t("validity_range", { from: fmtTime(c.valid_from), to: fmtTime(c.valid_until) });
    $("c-holder").textContent = c.holder || t("no_holder");
    Array.prototype.forEach.call(document.querySelectorAll(".line [data-ph]"), function (node) {
      node.setAttribute("placeholder", t(node.getAttribute("data-ph")));
      node.setAttribute("aria-label", t(node.getAttribute("data-ph")));
    });
  }

  function addLine() {
    var row = el("div", null, "line");
    [["sku", "line_sku", "text"], ["category", "line_category", "text"], ["qty", "line_qty", "numeric"],
     ["price", "line_price", "decimal"]].forEach(function (f) {
      var input = el("input");
      input.setAttribute("data-field", f[0]);
      input.setAttribute("data-ph", f[1]);
      input.setAttribute("placeholder", t(f[1]));
      input.setAttribute("aria-label", t(f[1]));
      input.setAttribute("inputmode", f[2]);
      input.setAttribute("autocomplete", "off");
      input.maxLength = 128;
      if (f[0] === "qty") { input.value = "1"; }
      input.addEventListener("input", invalidate);
      row.appendChild(input);
    });
    var remove = el("button", "×", "secondary small");
    remove.type = "button";
    remove.setAttribute("aria-label", t("line_remove"));
    remove.addEventListener("click", function () { row.remove(); invalidate(); });
    row.appendChild(remove);
    $("lines").appendChild(row);
  }

  /** The order as entered: {amount, lines?} or a descriptor of what is wrong. */
  function readOrder() {
    var amount = parseYuan($("amount").value);
    if (amount === null) { return { error: "amount_bad" }; }
    var order = { id: state.orderId, amount: amount };
    if (needsLines()) {
      var lines = [];
      var bad = false;
      Array.prototype.forEach.call($("lines").querySelectorAll(".line"), function (row) {
        function v(f) { return row.querySelector("[data-field=" + f + "]").value.trim(); }
        if (!v("sku") && !v("price")) { return; }  // an empty row is ignored
        var qty = parseInt(v("qty"), 10);
        var price = parseYuan(v("price"));
        if (!v("sku") || !(qty >= 1) || price === null) { bad = true; return; }
        var line = { sku: v("sku"), qty: qty, unit_price: price };
        if (v("category")) { line.category = v("category"); }
        lines.push(line);
      });
      if (bad) { return { error: "line_bad" }; }
      if (lines.length) { order.lines = lines; }
    }
    return { order: order };
  }

  function requestBody(order) {
    return JSON.stringify({ code: state.coupon.code, channel: "pos", order: order });
  }

  /** The order changed: what was checked no longer holds. */
  function invalidate() {
    state.validated = null;
    $("confirm").hidden = true;
    $("verdict").hidden = true;
  }

  function validate(ev) {
    ev.preventDefault();
    say("coupon-error", null);
    invalidate();
    var read = readOrder();
    if (read.error) { sayWords("coupon-error", read.error); return; }
    var body = requestBody(read.order);
    $("validate").disabled = true;
    document.body.setAttribute("data-busy", "validate");
    api("POST", "/v1/redemptions/validate", body).then(function (v) {
      state.validated = body;
      say("verdict-text", function () { return t("valid_text"); });
      say("verdict-discount", function () {
        return t("preview", { discount: yuan(v.discount), payable: yuan(v.payable) });
      });
      $("verdict").hidden = false;
      $("confirm").hidden = false;
      $("retry").hidden = true;
    }, function (err) {
      if (sessionGone(err)) { return; }
      showError("coupon-error", err);
    }).then(function () {
      $("validate").disabled = false;
      document.body.removeAttribute("data-busy");
    });
  }

  // statuses after which the same key may be sent again (the hub said: retry)
  var RETRY_SAME_KEY = { idempotency_key_in_flight: 1, database_busy: 1, database_unavailable: 1, draining: 1, internal_error: 1 };

  function redeem() {
    var body = state.validated;
    if (!body) { return; }
    // one intent, one key: the same body again (a retry) keeps the key it was sent with
    if (!state.pending || state.pending.body !== body) { setPending({ key: uuid(), body: body }); }
    var pending = state.pending;
    say("coupon-error", null);
    $("confirm").disabled = true;
    $("retry").disabled = true;
    document.body.setAttribute("data-busy", "redeem");
    api("POST", "/v1/redemptions", pending.body, { "Idempotency-Key": pending.key }).then(function (r) {
      setPending(null);
      showResult(r);
    }, function (err) {
      if (sessionGone(err)) { return; }
      if (err && err.network) {
        say("coupon-error", function () { return t("network_failed"); }, "network");
        $("confirm").hidden = true;
        $("retry").hidden = false;
        return;
      }
      if (!(err instanceof ApiError && RETRY_SAME_KEY[err.code])) { setPending(null); }
      showError("coupon-error", err);
      $("confirm").hidden = !(err instanceof ApiError && RETRY_SAME_KEY[err.code]);
      $("retry").hidden = true;
    }).then(function () {
      $("confirm").disabled = false;
      $("retry").disabled = false;
      document.body.removeAttribute("data-busy");
    });
  }

  function cancelCoupon() {
    setPending(null);
    state.coupon = null;
    toScan();
  }

  function showResult(r) {
    $("r-discount").textContent = "¥" + yuan(r.discount);
    $("r-payable").textContent = "¥" + yuan(r.payable);
    $("r-name").textContent = (r.template && r.template.name) || (state.coupon && state.coupon.template.name) || "";
    $("r-code").textContent = groupCode(r.code);
    $("r-order").textContent = r.order_id;
    document.body.setAttribute("data-redemption", r.redemption_id);
    state.coupon = null;
    show("result");
  }

  // --- today's redemptions ----------------------------------------------------------------

  function openToday() {
    show("today");
    say("today-error", null);
    $("reverse-box").hidden = true;
    loadToday();
  }

  function loadToday() {
    var s = state.session;
    var query = "?limit=" + TODAY_LIMIT + "&from=" + encodeURIComponent(startOfToday());
    if (s && s.staff && s.staff.id) { query += "&staff=" + encodeURIComponent(s.staff.id); }
    document.body.setAttribute("data-busy", "today");
    return api("GET", "/v1/redemptions" + query).then(function (page) {
      state.todayItems = page.items || [];
      renderToday(state.todayItems);
      document.body.setAttribute("data-today", String(state.todayItems.length));
    }, function (err) {
      if (sessionGone(err)) { return; }
      showError("today-error", err);
    }).then(function () { document.body.removeAttribute("data-busy"); });
  }

  function renderToday(items) {
    var list = $("today-list");
    list.textContent = "";
    var live = items.filter(function (i) { return i.status === "redeemed"; });
    var total = live.reduce(function (sum, i) { return sum + Number(i.discount || 0); }, 0);
    $("today-summary").textContent = items.length ?
      t("today_summary", { count: live.length, discount: yuan(total) }) : t("today_empty");
    items.forEach(function (item) {
      var li = el("li", null, "item" + (item.status === "redeemed" ? "" : " reversed"));
      li.setAttribute("data-redemption", item.redemption_id);
      var top = el("div", null, "item-top");
      top.appendChild(el("span", fmtTime(item.redeemed_at, false), "time"));
      top.appendChild(el("span", "−¥" + yuan(item.discount), "amount"));
      li.appendChild(top);
      var sub = el("div", null, "item-sub");
      sub.appendChild(el("span", groupCode(item.code || ""), "mono"));
      sub.appendChild(el("span", t("order") + " " + item.order_id + " · ¥" + yuan(item.order_amount), "muted"));
      li.appendChild(sub);
      if (item.status === "redeemed") {
        var b = el("button", t("reverse_button"), "danger small");
        b.type = "button";
        b.addEventListener("click", function () { askReverse(item); });
        li.appendChild(b);
      } else {
        li.appendChild(el("span", t("reversed_tag"), "tag"));
      }
      list.appendChild(li);
    });
  }

  function askReverse(item) {
    state.reversing = item;
    say("reverse-text", function () {
      return t("reverse_confirm", { code: groupCode(item.code || ""), order: item.order_id, discount: yuan(item.discount) });
    });
    $("reverse-box").hidden = false;
    $("reverse-yes").focus();
  }

  function reverse() {
    var item = state.reversing;
    if (!item) { return; }
    var id = item.redemption_id;
    var key = state.reversalKeys[id] || (state.reversalKeys[id] = uuid());
    $("reverse-yes").disabled = true;
    say("today-error", null);
    api("POST", "/v1/redemptions/" + encodeURIComponent(id) + "/reversal",
        { reason: "reversed by staff on the phone page" }, { "Idempotency-Key": key }).then(function () {
      delete state.reversalKeys[id];
      state.reversing = null;
      $("reverse-box").hidden = true;
      sayWords("today-summary", "reversed_done");
      return loadToday();
    }, function (err) {
      if (sessionGone(err)) { return; }
      if (!(err && err.network)) { delete state.reversalKeys[id]; }
      showError("today-error", err);
    }).then(function () { $("reverse-yes").disabled = false; });
  }

  // --- start ---------------------------------------------------------------------------

  function toggleLanguage() {
    state.lang = state.lang === "zh" ? "en" : "zh";
    sessionStorage.setItem(LANG_SLOT, state.lang);
    applyWords();
  }

  function wire() {
    $("lang-toggle").addEventListener("click", toggleLanguage);
    $("sign-out").addEventListener("click", signOut);
    $("signin-form").addEventListener("submit", signIn);
    $("manual-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      stopScanner();
      lookUp($("manual-code").value, "typed");
    });
    $("open-today").addEventListener("click", openToday);
    $("order-form").addEventListener("submit", validate);
    $("amount").addEventListener("input", invalidate);
    $("add-line").addEventListener("click", addLine);
    $("confirm").addEventListener("click", redeem);
    $("retry").addEventListener("click", redeem);
    $("cancel").addEventListener("click", cancelCoupon);
    $("next").addEventListener("click", toScan);
    $("back-to-scan").addEventListener("click", toScan);
    $("reverse-yes").addEventListener("click", reverse);
    $("reverse-no").addEventListener("click", function () { state.reversing = null; $("reverse-box").hidden = true; });
    window.addEventListener("online", function () { setOffline(false); });
    window.addEventListener("offline", function () { setOffline(true); });
    window.addEventListener("pagehide", stopScanner);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { stopScanner(); } else if (state.screen === "scan") { startScanner(); }
    });
  }

  function start() {
    wire();
    applyWords();
    setOffline(navigator.onLine === false);
    if (!state.session) { show("signin"); return; }
    armExpiry();
    renderWho();
    toScan();
    // the stored session may have been ended elsewhere (signed out, staff disabled)
    api("GET", "/v1/staff/me").then(function (me) {
      if (me && state.session) {
        var s = state.session;
        s.staff = me.staff || s.staff; s.store = me.store || s.store; s.merchant = me.merchant || s.merchant;
        if (me.expires_at) { s.expires_at = me.expires_at; }
        startSession(s);
      }
    }, function (err) { sessionGone(err); });
  }

  start();
}());
