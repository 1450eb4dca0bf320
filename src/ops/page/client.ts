/**
 * The /ops page's stylesheet and its one inline script (no framework, no build step). Both are
 * constants sent with a per-response CSP nonce; the script renders nothing from data as markup:
 * it swaps in the server's escaped HTML on Refresh and uses textContent for alerts and messages.
 */

export const OPS_CSS = `
:root { color-scheme:light dark; --fg:#1d232b; --muted:#5b6673; --line:#d9dee4; --bg:#f5f7f9; --card:#fff; --ok:#1a7f37; --bad:#c62828; --warn:#9a6700; --accent:#0b5cad;
  --btn:#fff; --btn-line:#b7c0ca; --btn-hover:#eef3f8; --off:#f1f3f5; --off-fg:#9aa3ad; --badge:#eef1f4; --badge-ok:#dcf3e3; --badge-bad:#fbe0e0; --badge-warn:#fff0c7;
  --msg-ok-line:#9fd4ae; --msg-ok:#edf8f0; --msg-bad-line:#e3a5a5; --msg-bad:#fdf0f0; --note:#fff4e5; --note-line:#f0c36d; --danger-line:#d9a3a3; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#dde3ea; --muted:#97a3b0; --line:#36404b; --bg:#12161b; --card:#1b2128; --ok:#5fd38a; --bad:#ff8a80; --warn:#f2c14e; --accent:#79b8ff;
    --btn:#232b34; --btn-line:#4a5562; --btn-hover:#2c3641; --off:#1f252c; --off-fg:#6b7682; --badge:#2a323c; --badge-ok:#163824; --badge-bad:#4a1f1f; --badge-warn:#45380f;
    --msg-ok-line:#2f6b43; --msg-ok:#14291c; --msg-bad-line:#7a3434; --msg-bad:#2c1616; --note:#2e2410; --note-line:#7a5f1c; --danger-line:#7a3434; }
  header.banner.development { background:#17553a; }
  header.banner.production { background:#8a1215; }
}
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg); background:var(--bg); }
header.banner { padding:10px 20px; display:flex; gap:16px; align-items:baseline; flex-wrap:wrap; color:#fff; }
header.banner.development { background:#1f6f43; }
header.banner.production { background:#a4161a; }
header.banner .env { font-weight:700; font-size:18px; letter-spacing:.06em; }
header.banner .writes { font-weight:600; padding:1px 8px; border-radius:10px; background:rgba(255,255,255,.18); }
header.banner .meta { margin-left:auto; opacity:.9; font-size:12px; }
.toolbar { display:flex; gap:8px; align-items:center; flex-wrap:wrap; padding:10px 20px; background:var(--card); border-bottom:1px solid var(--line); }
.toolbar label { color:var(--muted); }
.toolbar input { font:inherit; padding:4px 6px; border:1px solid var(--line); border-radius:4px; width:16em; }
.toolbar .spacer { flex:1; }
.toolbar .stamp { color:var(--muted); font-size:12px; }
button { font:inherit; padding:3px 10px; border:1px solid var(--btn-line); border-radius:4px; background:var(--btn); color:var(--fg); cursor:pointer; }
button:hover:not(:disabled) { background:var(--btn-hover); }
button.primary { border-color:var(--accent); color:var(--accent); }
button.danger { border-color:var(--danger-line); color:var(--bad); }
button:disabled { cursor:not-allowed; color:var(--off-fg); background:var(--off); border-color:var(--line); }
.toolbar input { background:var(--btn); color:var(--fg); }
.toolbar label.switch { color:var(--fg); display:inline-flex; gap:4px; align-items:center; }
.toolbar input[type=checkbox] { width:auto; }
.message { margin:10px 20px 0; padding:8px 12px; border-radius:4px; border:1px solid var(--line); background:var(--card); }
.message.ok { border-color:var(--msg-ok-line); background:var(--msg-ok); }
.message.error { border-color:var(--msg-bad-line); background:var(--msg-bad); }
.note { margin:10px 20px 0; padding:8px 12px; border-radius:4px; background:var(--note); border:1px solid var(--note-line); }
a { color:var(--accent); }
.scroll { overflow-x:auto; -webkit-overflow-scrolling:touch; }
.dead-group h3 { display:flex; gap:8px; align-items:center; flex-wrap:wrap; }
.dead-group h3 .acts { margin-left:auto; display:inline-flex; gap:6px; }
pre.payload { background:var(--bg); border:1px solid var(--line); border-radius:4px; padding:8px; overflow-x:auto; white-space:pre-wrap; word-break:break-word; margin:0; }
#chart svg { width:100%; height:120px; display:block; }
#chart .bar-ok { fill:var(--ok); } #chart .bar-bad { fill:var(--bad); } #chart .axis { stroke:var(--line); } #chart text { fill:var(--muted); font-size:10px; }
.legend { display:flex; gap:14px; flex-wrap:wrap; color:var(--muted); font-size:12px; }
.legend .sw { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; vertical-align:-1px; }
.legend .sw.ok { background:var(--ok); } .legend .sw.bad { background:var(--bad); }
.hidden-by-filter { display:none; }
main, #data { display:grid; gap:14px; grid-template-columns:minmax(0, 1fr); }
main { padding:14px 20px 24px; }
section { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 14px; }
section h2 { font-size:15px; margin:2px 0 8px; }
section h3 { font-size:13px; margin:10px 0 4px; }
.empty, .muted { color:var(--muted); }
.section-error { color:var(--bad); }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.mono, .mono { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12.5px; word-break:break-all; }
td.err { max-width:48em; }
table.dead { table-layout:fixed; }
table.dead col.task { width:22%; } table.dead col.attempts { width:7em; } table.dead col.since { width:13em; } table.dead col.act { width:11em; }
table { min-width:100%; }
td.act { white-space:nowrap; }
.badge { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; font-weight:600; background:var(--badge); }
.badge.ok { background:var(--badge-ok); color:var(--ok); }
.badge.bad { background:var(--badge-bad); color:var(--bad); }
.badge.warn { background:var(--badge-warn); color:var(--warn); }
tr.hot td.dead { color:var(--bad); font-weight:700; }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:2px 14px; margin:0; }
dl.kv dt { color:var(--muted); }
dl.kv dd { margin:0; }
#alerts ul { margin:0; padding-left:18px; }
/* Phones: last, so it wins over the rules above. */
@media (max-width: 640px) {
  header.banner, .toolbar { padding:8px 10px; }
  header.banner .meta { margin-left:0; width:100%; word-break:break-all; }
  .toolbar input:not([type=checkbox]) { width:100%; }
  .toolbar .spacer { display:none; }
  main { padding:10px 8px 18px; }
  section { padding:8px 8px; }
  .message, .note { margin:8px 8px 0; }
  /* Tables keep their columns and scroll sideways inside their panel; only error text wraps. */
  .scroll th, .scroll td { white-space:nowrap; }
  .scroll td.mono { word-break:normal; }
  .scroll td.err { white-space:normal; width:18em; min-width:18em; max-width:none; }
  table.dead { table-layout:auto; }
  table.dead col.task, table.dead col.since, table.dead col.attempts, table.dead col.act { width:auto; }
}
`;

export const OPS_JS = `
(function () {
  'use strict';
  var TOKEN_KEY = 'metaspn.ops.token';
  var ACTOR_KEY = 'metaspn.ops.actor';
  var LIVE_KEY = 'metaspn.ops.live';
  var tokenEl = document.getElementById('token');
  var actorEl = document.getElementById('actor');
  var msgEl = document.getElementById('message');
  var stampEl = document.getElementById('refreshed');
  var liveEl = document.getElementById('live');
  var filterEl = document.getElementById('filter');
  // Every URL is relative to where the page is served, so it works under a path prefix behind a proxy.
  var ROOT = location.pathname.replace(/ops[/]?$/, '');
  var LIVE_MS = Math.max(1000, Number(document.body.getAttribute('data-refresh-ms')) || 5000);
  var busy = 0;

  try {
    tokenEl.value = sessionStorage.getItem(TOKEN_KEY) || '';
    actorEl.value = sessionStorage.getItem(ACTOR_KEY) || '';
    if (sessionStorage.getItem(LIVE_KEY) === 'off') liveEl.checked = false;
  } catch (e) { /* storage may be off: the fields still work for this page */ }

  function save() {
    try {
      sessionStorage.setItem(TOKEN_KEY, tokenEl.value.trim());
      sessionStorage.setItem(ACTOR_KEY, actorEl.value.trim());
    } catch (e) { /* ignore */ }
  }
  tokenEl.addEventListener('input', save);
  actorEl.addEventListener('input', save);

  function say(kind, text) {
    msgEl.className = 'message ' + kind;
    msgEl.textContent = text;
    msgEl.hidden = !text;
  }

  function headers(json) {
    var h = {};
    var t = tokenEl.value.trim();
    if (t) h['Authorization'] = 'Bearer ' + t;
    var a = actorEl.value.trim();
    if (a) h['X-Metaspn-Actor'] = a;
    if (json) h['Content-Type'] = 'application/json';
    return h;
  }

  function stamp() {
    stampEl.textContent = 'refreshed ' + new Date().toISOString().replace('T', ' ').replace(/\\.\\d+Z$/, 'Z');
  }

  async function refresh() {
    var button = document.getElementById('refresh');
    button.disabled = true;
    busy++;
    try {
      // The page of each list being looked at is kept (its query), plus part=data.
      var q = new URLSearchParams(location.search);
      q.set('part', 'data');
      var r = await fetch(ROOT + 'ops?' + q.toString(), { headers: headers(false), cache: 'no-store' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      var doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      var fresh = doc.getElementById('data');
      if (!fresh) throw new Error('the page had no data section');
      document.getElementById('data').replaceWith(document.adoptNode(fresh));
      applyFilter();
      stamp();
    } catch (e) {
      say('error', 'Refresh failed: ' + (e && e.message ? e.message : String(e)));
    } finally {
      button.disabled = false;
      busy--;
    }
    await loadAlerts();
  }

  /** Rows (and dead-letter groups) whose text does not contain the filter are hidden; the filter survives refreshes. */
  function applyFilter() {
    var q = filterEl.value.trim().toLowerCase();
    var rows = document.querySelectorAll('#data tbody tr');
    for (var i = 0; i < rows.length; i++) rows[i].classList.toggle('hidden-by-filter', q !== '' && rows[i].textContent.toLowerCase().indexOf(q) < 0);
    var groups = document.querySelectorAll('#data .dead-group');
    for (var j = 0; j < groups.length; j++) {
      var g = groups[j];
      var shown = g.querySelectorAll('tbody tr:not(.hidden-by-filter)').length;
      var named = (g.getAttribute('data-queue') || '').toLowerCase().indexOf(q) >= 0;
      g.classList.toggle('hidden-by-filter', q !== '' && shown === 0 && !named);
      if (q !== '' && named && shown === 0) {
        var all = g.querySelectorAll('tbody tr');
        for (var k = 0; k < all.length; k++) all[k].classList.remove('hidden-by-filter');
      }
    }
    document.body.setAttribute('data-filter', q);
  }
  filterEl.addEventListener('input', applyFilter);

  // Live refresh: every LIVE_MS while the switch is on and the tab is shown; never during a write.
  setInterval(function () {
    if (liveEl.checked && !document.hidden && busy === 0) refresh();
  }, LIVE_MS);
  liveEl.addEventListener('change', function () {
    try { sessionStorage.setItem(LIVE_KEY, liveEl.checked ? 'on' : 'off'); } catch (e) { /* ignore */ }
    document.body.setAttribute('data-live', liveEl.checked ? 'on' : 'off');
  });
  document.body.setAttribute('data-live', liveEl.checked ? 'on' : 'off');

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  /** GET /api/alerts ({checked_at, open: [...]}): shown when it answers 200, hidden otherwise. */
  async function loadAlerts() {
    var panel = document.getElementById('alerts');
    var list = document.getElementById('alerts-list');
    try {
      var r = await fetch(ROOT + 'api/alerts', { headers: headers(false), cache: 'no-store' });
      if (r.status !== 200) { panel.hidden = true; return; }
      var body = await r.json();
      var items = Array.isArray(body) ? body : (body && (body.open || body.alerts)) || [];
      list.replaceChildren();
      if (!items.length) list.appendChild(text('p', 'No open alerts.', 'empty'));
      else {
        var ul = document.createElement('ul');
        items.forEach(function (a) {
          var li = document.createElement('li');
          li.className = 'alert';
          var sev = String(a.severity || a.level || 'alert');
          li.appendChild(text('span', sev, 'badge ' + (/crit|error|fail/i.test(sev) ? 'bad' : 'warn')));
          li.appendChild(document.createTextNode(' '));
          li.appendChild(text('strong', String(a.rule || a.name || a.kind || ''), ''));
          var message = String(a.message || a.summary || a.reason || '');
          // The message usually starts with its subject already ("project_rewards: 1 new dead letter").
          if (a.subject && message.indexOf(String(a.subject)) !== 0) li.appendChild(text('span', ' ' + String(a.subject), 'mono'));
          li.appendChild(text('span', ': ' + message, 'alert-message'));
          var when = a.since || a.at;
          var meta = [];
          if (when) meta.push('since ' + fmt(String(when)));
          if (a.delivery) meta.push('webhook ' + String(a.delivery).replace('_', ' '));
          if (meta.length) li.appendChild(text('span', ' (' + meta.join(', ') + ')', 'muted'));
          ul.appendChild(li);
        });
        list.appendChild(ul);
      }
      var checked = body && !Array.isArray(body) && 'checked_at' in body ? body.checked_at : undefined;
      if (checked !== undefined) list.appendChild(text('p', checked ? 'Last checked ' + fmt(String(checked)) + '.' : 'Not checked yet (metaspn alerts check, or serve checks periodically).', 'muted'));
      panel.hidden = false;
    } catch (e) {
      panel.hidden = true;
    }
  }

  function fmt(iso) {
    return iso.replace('T', ' ').replace(/\\.\\d+Z$/, 'Z');
  }

  var LABEL = { retry: 'Retry', discard: 'Discard', pause: 'Pause', resume: 'Resume' };

  async function act(b) {
    var action = b.getAttribute('data-action');
    var worker = b.getAttribute('data-worker');
    var task = b.getAttribute('data-task');
    var count = b.getAttribute('data-count');
    var what = LABEL[action] + (task ? ' ' + worker + ' / ' + task : count ? ' all ' + count + ' dead letter(s) of ' + worker : ' ' + worker);
    if (!tokenEl.value.trim()) {
      say('error', what + ': enter the admin token first (writes need Authorization: Bearer <METASPN_ADMIN_TOKEN>).');
      tokenEl.focus();
      return;
    }
    var payload = task ? { task_id: task } : {};
    // A write on every dead letter of a queue is confirmed first (a discard asks for its reason instead).
    if (count && action === 'retry' && !window.confirm(what + '?')) return;
    if (action === 'discard') {
      // Giving up on a task is recorded with a reason: asked every time, never defaulted.
      var reason = window.prompt(what + ': it leaves the dead letters for good. Why? (recorded in the ledger)', '');
      if (reason === null) return;
      if (!reason.trim()) {
        say('error', what + ': a reason is required.');
        return;
      }
      payload = task ? { task_ids: [task], reason: reason.trim() } : { all: true, reason: reason.trim() };
    }
    b.disabled = true;
    say('info', what + ' ...');
    var ok = false;
    var body = {};
    busy++;
    try {
      var r = await fetch(ROOT + 'api/queues/' + encodeURIComponent(worker) + '/' + action, {
        method: 'POST',
        headers: headers(true),
        body: JSON.stringify(payload),
      });
      body = await r.json().catch(function () { return {}; });
      ok = r.ok;
      if (!ok) say('error', what + ' refused (HTTP ' + r.status + '): ' + (body.error || r.statusText));
    } catch (e) {
      say('error', what + ' failed: ' + (e && e.message ? e.message : String(e)));
    } finally {
      busy--;
    }
    if (!ok) {
      b.disabled = false;
      return;
    }
    if (action === 'retry') say('ok', 'Retried ' + (body.retried || []).join(', ') + ' in ' + worker + ': back to ready.');
    else if (action === 'discard') say('ok', 'Discarded ' + (body.discarded || []).join(', ') + ' in ' + worker + ' (ledger entry ' + body.ledger_seq + ').');
    else say('ok', (action === 'pause' ? 'Paused ' : 'Resumed ') + worker + '.');
    await refresh();
  }

  document.addEventListener('click', function (ev) {
    var t = ev.target;
    var b = t && t.closest ? t.closest('button[data-action]') : null;
    if (b && !b.disabled) act(b);
  });
  document.getElementById('refresh').addEventListener('click', function () { say('', ''); refresh(); });
  document.getElementById('forget').addEventListener('click', function () {
    tokenEl.value = '';
    save();
    say('info', 'Token forgotten for this tab.');
  });

  stamp();
  loadAlerts();
})();
`;
