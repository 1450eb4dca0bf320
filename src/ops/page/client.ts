/**
 * The /ops page's stylesheet and its one inline script (no framework, no build step). Both are
 * constants sent with a per-response CSP nonce; the script renders nothing from data as markup:
 * it swaps in the server's escaped HTML on Refresh and uses textContent for alerts and messages.
 */

export const OPS_CSS = `
:root { --fg:#1d232b; --muted:#5b6673; --line:#d9dee4; --bg:#f5f7f9; --card:#fff; --ok:#1a7f37; --bad:#c62828; --warn:#9a6700; --accent:#0b5cad; }
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
button { font:inherit; padding:3px 10px; border:1px solid #b7c0ca; border-radius:4px; background:#fff; color:var(--fg); cursor:pointer; }
button:hover:not(:disabled) { background:#eef3f8; }
button.primary { border-color:var(--accent); color:var(--accent); }
button.danger { border-color:#d9a3a3; color:var(--bad); }
button:disabled { cursor:not-allowed; color:#9aa3ad; background:#f1f3f5; border-color:var(--line); }
.message { margin:10px 20px 0; padding:8px 12px; border-radius:4px; border:1px solid var(--line); background:var(--card); }
.message.ok { border-color:#9fd4ae; background:#edf8f0; }
.message.error { border-color:#e3a5a5; background:#fdf0f0; }
.note { margin:10px 20px 0; padding:8px 12px; border-radius:4px; background:#fff4e5; border:1px solid #f0c36d; }
main, #data { display:grid; gap:14px; }
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
td.act { white-space:nowrap; }
.badge { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; font-weight:600; background:#eef1f4; }
.badge.ok { background:#dcf3e3; color:var(--ok); }
.badge.bad { background:#fbe0e0; color:var(--bad); }
.badge.warn { background:#fff0c7; color:var(--warn); }
tr.hot td.dead { color:var(--bad); font-weight:700; }
dl.kv { display:grid; grid-template-columns:max-content 1fr; gap:2px 14px; margin:0; }
dl.kv dt { color:var(--muted); }
dl.kv dd { margin:0; }
#alerts ul { margin:0; padding-left:18px; }
`;

export const OPS_JS = `
(function () {
  'use strict';
  var TOKEN_KEY = 'metaspn.ops.token';
  var ACTOR_KEY = 'metaspn.ops.actor';
  var tokenEl = document.getElementById('token');
  var actorEl = document.getElementById('actor');
  var msgEl = document.getElementById('message');
  var stampEl = document.getElementById('refreshed');

  try {
    tokenEl.value = sessionStorage.getItem(TOKEN_KEY) || '';
    actorEl.value = sessionStorage.getItem(ACTOR_KEY) || '';
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
    var busy = document.getElementById('refresh');
    busy.disabled = true;
    try {
      var r = await fetch('/ops?part=data', { headers: headers(false), cache: 'no-store' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      var doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      var fresh = doc.getElementById('data');
      if (!fresh) throw new Error('the page had no data section');
      document.getElementById('data').replaceWith(document.adoptNode(fresh));
      stamp();
    } catch (e) {
      say('error', 'Refresh failed: ' + (e && e.message ? e.message : String(e)));
    } finally {
      busy.disabled = false;
    }
    await loadAlerts();
  }

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
      var r = await fetch('/api/alerts', { headers: headers(false), cache: 'no-store' });
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
    var what = LABEL[action] + ' ' + worker + (task ? ' / ' + task : '');
    if (!tokenEl.value.trim()) {
      say('error', what + ': enter the admin token first (writes need Authorization: Bearer <METASPN_ADMIN_TOKEN>).');
      tokenEl.focus();
      return;
    }
    var payload = task ? { task_id: task } : {};
    if (action === 'discard') {
      // Giving up on a task is recorded with a reason: asked every time, never defaulted.
      var reason = window.prompt(what + ': it leaves the dead letters for good. Why? (recorded in the ledger)', '');
      if (reason === null) return;
      if (!reason.trim()) {
        say('error', what + ': a reason is required.');
        return;
      }
      payload = { task_ids: [task], reason: reason.trim() };
    }
    b.disabled = true;
    say('info', what + ' ...');
    try {
      var r = await fetch('/api/queues/' + encodeURIComponent(worker) + '/' + action, {
        method: 'POST',
        headers: headers(true),
        body: JSON.stringify(payload),
      });
      var body = await r.json().catch(function () { return {}; });
      if (!r.ok) {
        say('error', what + ' refused (HTTP ' + r.status + '): ' + (body.error || r.statusText));
        b.disabled = false;
        return;
      }
      if (action === 'retry') say('ok', 'Retried ' + (body.retried || []).join(', ') + ' in ' + worker + ': back to ready.');
      else if (action === 'discard') say('ok', 'Discarded ' + (body.discarded || []).join(', ') + ' in ' + worker + ' (ledger entry ' + body.ledger_seq + ').');
      else say('ok', (action === 'pause' ? 'Paused ' : 'Resumed ') + worker + '.');
      await refresh();
    } catch (e) {
      say('error', what + ' failed: ' + (e && e.message ? e.message : String(e)));
      b.disabled = false;
    }
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
