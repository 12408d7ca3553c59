// The dashboard page: one WebSocket feed in, driver-station frames and commands out.
// It is a driver link only while it is visible and has been used to enable: every 20 ms
// it sends its gamepad input and requests, and stops when the tab is hidden or closed,
// so the robot's control timeout disables the robot (the server repeats nothing).
'use strict';
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get('token') || '';
const PLOT_SECONDS = 30, SEND_MS = 20, LOG_KEEP = 2000;
// The simulated robot's trail: its last 30 s of poses (at most 20 a second), broken where
// it jumped farther than it can drive between two (`pitcrew sim place`, a reset).
const TRAIL_SECONDS = 30, TRAIL_MAX = 1200, TRAIL_JUMP_M = 0.5;
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
const BUTTONS = ['A', 'B', 'X', 'Y', 'LB', 'RB', 'LT', 'RT', 'Back', 'Start', 'LS', 'RS', 'Up', 'Down', 'Left', 'Right', 'Home'];

const S = {
  ws: null, hello: null, robot: null, robotAt: 0, values: {}, seen: {}, devices: [], health: null,
  pads: [], logs: [], apps: new Set(), latched: false, selected: null, series: {}, nextId: 1, dirty: {},
  ds: { active: false, mode: 'teleop', enable: false, enable_id: 0, estop: false },
  sim: { field: null, key: null, pose: null, trail: [] },
};

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
function fmt(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(3);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
function mark(...parts) { for (const p of parts) S.dirty[p] = true; }
function toast(text, error) { const t = $('toast'); t.textContent = text; t.className = 'detail' + (error ? ' error' : ''); }

// ---- the feed ----
function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/feed?token=${encodeURIComponent(token)}`);
  S.ws = ws;
  ws.onopen = () => { $('feed').textContent = 'live'; };
  ws.onclose = () => {
    $('feed').textContent = 'lost; reconnecting';
    $('feed').className = 'stale';
    S.ws = null;
    setTimeout(connect, 1000);
  };
  ws.onmessage = (e) => { try { onFrame(JSON.parse(e.data)); } catch (err) { console.error(err); } };
}

function onFrame(f) {
  const now = performance.now();
  switch (f.t) {
    case 'hello':
      S.hello = f;
      $('feed').className = '';
      if (!f.commands) toast('read-only: commands are taken from the robot itself until a team key is set', true);
      break;
    case 'snap':
      S.values = f.values || {};
      S.seen = {};
      for (const [uid, age] of Object.entries(f.age_ms || {})) S.seen[uid] = now - age;
      if (f.robot) { S.robot = f.robot; S.robotAt = now - (f.robot_age_ms || 0); }
      S.logs = (f.logs || []).slice(-LOG_KEEP);
      S.logs.forEach((r) => S.apps.add(r.app));
      S.devices = Array.isArray(f.devices) ? f.devices : [];
      S.health = f.health; S.pads = f.gamepads || [];
      simField(f.sim ? f.sim.field : null);
      if (f.sim && f.sim.pose) simPose(f.sim.pose, now);
      mark('devices', 'logs', 'health', 'pads', 'header', 'field');
      break;
    case 'upd':
      for (const [uid, vals] of Object.entries(f.devices)) {
        const cur = S.values[uid] || (S.values[uid] = {});
        const keys = Object.keys(vals);
        if (keys.length || !(uid in S.seen)) S.seen[uid] = now;
        for (const k of keys) { cur[k] = vals[k]; sample(uid, k, vals[k], now); }
      }
      mark('devices');
      break;
    case 'robot': S.robot = f.robot; S.robotAt = now; mark('header'); break;
    case 'logs':
      for (const r of f.recs) { S.logs.push(r); S.apps.add(r.app); }
      if (S.logs.length > LOG_KEEP) S.logs.splice(0, S.logs.length - LOG_KEEP);
      mark('logs');
      break;
    case 'devices': S.devices = Array.isArray(f.devices) ? f.devices : []; mark('devices'); break;
    case 'health': S.health = f.health; mark('health'); break;
    case 'pads': S.pads = f.gamepads; mark('pads'); break;
    case 'simfield': simField(f.field); mark('field'); break;
    case 'simpose': simPose(f.pose, now); mark('field'); break;
    case 'reply':
      // The broker answers an emergency stop once every device has its DEV_DISABLE and
      // the latch is set; it may exit right after (the supervisor then stops the suite),
      // before any state datagram says so.
      if (f.ok && f.method === 'estop') { S.latched = true; mark('header'); }
      if (f.ok) toast(`${f.method || 'command'}: done`);
      else toast(`${f.method || 'command'} refused: ${f.error}`, true);
      break;
  }
}

function sample(uid, param, v, now) {
  const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
  if (typeof n !== 'number' || !isFinite(n)) return;
  const key = uid + '/' + param;
  const s = S.series[key] || (S.series[key] = []);
  s.push([now, n]);
  while (s.length && s[0][0] < now - PLOT_SECONDS * 1000) s.shift();
}

// A simulation's field: another one (or none) starts a new trail.
function simField(field) {
  const key = field ? JSON.stringify(field) : null;
  if (key !== S.sim.key) S.sim = { field, key, pose: null, trail: [] };
}
function simPose(pose, now) {
  if (!S.sim.field || !pose || ![pose.x, pose.y, pose.heading].every(Number.isFinite)) return;
  S.sim.pose = pose;
  const t = S.sim.trail;
  t.push([now, pose.x, pose.y]);
  if (t.length > TRAIL_MAX) t.splice(0, t.length - TRAIL_MAX);
}

function send(obj) {
  if (S.ws && S.ws.readyState === WebSocket.OPEN) { S.ws.send(JSON.stringify(obj)); return true; }
  return false;
}
function command(method, args) {
  if (!send({ t: 'cmd', id: S.nextId++, method, args: args || [] })) toast('not connected to the robot', true);
}

// ---- the driver station ----
function localPads() {
  const out = {};
  let first = null;
  const pads = navigator.getGamepads ? navigator.getGamepads() : [];
  let i = 0;
  for (const p of pads) {
    if (!p || !p.connected || i >= 4) continue;
    if (!first) first = p.id;
    let btn = 0;
    p.buttons.forEach((b, k) => { if (k < BUTTONS.length && (b.pressed || b.value > 0.5)) btn |= 1 << k; });
    const ax = (k) => (typeof p.axes[k] === 'number' ? p.axes[k] : 0);
    // The Gamepad API's y axes point down; the wire's point up.
    out[String(i)] = { lx: ax(0), ly: -ax(1), rx: ax(2), ry: -ax(3), btn };
    i++;
  }
  return { pads: out, first };
}

function stationFrame() {
  const { pads } = localPads();
  return { t: 'ds', pads, mode: S.ds.mode, enable: S.ds.enable, enable_id: S.ds.enable_id, estop: S.ds.estop };
}

function tick() {
  if (S.ds.active && document.visibilityState === 'visible') send(stationFrame());
}
setInterval(tick, SEND_MS);
document.addEventListener('visibilitychange', () => {
  // Hidden: stop sending (the robot disables itself within its control timeout) and
  // forget the enable, so coming back never re-enables by itself.
  if (document.visibilityState !== 'visible') S.ds.enable = false;
});

// Makes this page a driver link: the robot takes a station's first frames as its
// baseline, so the enable press that follows is a new request (robot-state.md rule 4).
function startLink(then) {
  if (S.ds.active) { then(); return; }
  S.ds.active = true;
  tick();
  setTimeout(then, 300);
}
function enable(mode) {
  if (S.ds.estop) { toast('emergency stop latched: restart and clean the suite', true); return; }
  startLink(() => {
    if (S.ds.mode !== mode) S.ds.enable = false;
    S.ds.mode = mode;
    S.ds.enable_id += 1;
    S.ds.enable = true;
    tick();
  });
}
function disable() { S.ds.enable = false; tick(); command('disable'); }
function estop() {
  S.ds.estop = true; S.ds.enable = false;
  tick();
  command('estop');
}
function startMatch() {
  const n = (id) => Number($(id).value) || 0;
  startLink(() => command('start_match', [n('m-auto'), n('m-gap'), n('m-teleop')]));
}

$('enable-auto').onclick = () => enable('autonomous');
$('enable-teleop').onclick = () => enable('teleop');
$('disable').onclick = disable;
$('estop').onclick = estop;
$('start-match').onclick = startMatch;
$('stop-match').onclick = () => command('stop_match');
document.addEventListener('keydown', (e) => {
  // The space bar is the emergency stop anywhere on the page, also in a text field.
  if (e.code === 'Space' || e.key === ' ') { e.preventDefault(); estop(); }
}, true);

// ---- rendering ----
function renderHeader() {
  const r = S.robot, now = performance.now();
  const st = $('state');
  if (!r && S.latched) { st.textContent = 'ESTOPPED'; st.className = 'state state-estopped'; return; }
  if (!r) { st.textContent = 'NO ROBOT'; st.className = 'state state-unknown'; return; }
  const stale = now - S.robotAt > 1500;
  if (r.estopped) S.latched = true;
  st.textContent = S.latched ? 'ESTOPPED' : stale ? 'NO DATA' : r.state.toUpperCase();
  st.className = 'state ' + (S.latched ? 'state-estopped' : stale ? 'state-unknown' : 'state-' + r.state);
  $('state-detail').textContent = (r.reason ? r.reason : '') + (stale ? ` (last heard ${((now - S.robotAt) / 1000).toFixed(1)} s ago)` : '');
  $('link').textContent = r.link ? `${r.link} · ${r.link_age_ms != null ? r.link_age_ms + ' ms' : ''}` : 'none';
  const m = r.match;
  $('match').textContent = m && m.phase ? `${m.phase} · ${(m.phase_left_ms / 1000).toFixed(0)} s (match ${(m.left_ms / 1000).toFixed(0)} s left)` : 'none';
  $('estop').classList.toggle('latched', !!S.latched);
  if (S.latched) $('estop').firstChild.textContent = 'E-STOPPED';
  const mine = S.hello && r.link === S.hello.source;
  const { first } = localPads();
  $('source').textContent = mine
    ? `this page${first ? ' (gamepad: ' + first + ')' : ' (no gamepad)'}`
    : (r.link ? `${r.link} (another station)` : 'nobody');
  const bat = S.devices.find((d) => d.type === 'battery' && S.values[d.uid] && 'v_batt' in S.values[d.uid]);
  $('battery-row').hidden = !bat;
  if (bat) $('battery').textContent = S.values[bat.uid].v_batt.toFixed(2) + ' V';
}

// Rows are kept and only their cells' text changes: a row under the pointer stays the same
// element while the values stream in (a rebuilt table would lose clicks).
function renderDevices() {
  const now = performance.now();
  const known = new Map(S.devices.map((d) => [d.uid, d]));
  for (const uid of Object.keys(S.values)) if (!known.has(uid)) known.set(uid, { uid, type: '?', valid: true });
  const rows = [...known.values()].sort((a, b) => (a.type + a.uid).localeCompare(b.type + b.uid));
  $('device-count').textContent = `${rows.length} devices`;
  const body = $('devices').tBodies[0];
  const order = rows.map((d) => d.uid).join(',');
  if (body.dataset.order !== order) {
    const old = new Map([...body.rows].map((tr) => [tr.dataset.uid, tr]));
    body.replaceChildren(...rows.map((d) => old.get(d.uid) || newRow(d.uid)));
    body.dataset.order = order;
  }
  for (const [i, d] of rows.entries()) {
    const tr = body.rows[i];
    const vals = S.values[d.uid] || {};
    const age = d.uid in S.seen ? now - S.seen[d.uid] : null;
    const c = d.counters || {};
    const errors = c.errors || 0; // the broker's one definition (device_json)
    const text = Object.entries(vals).map(([k, v]) => `${k}=${fmt(v)}`).join(' ');
    const cells = [
      [d.type, ''], [d.uid, ''], [d.valid ? 'yes' : 'no', d.valid ? 'yes' : 'no'],
      [age == null ? '–' : (age / 1000).toFixed(1) + ' s', age != null && age > 2000 ? 'stale' : ''],
      [String(errors), ''], [text, 'values'],
    ];
    cells.forEach(([t, cls], k) => {
      const td = tr.cells[k];
      if (td.textContent !== t) td.textContent = t;
      if (td.className !== cls) td.className = cls;
    });
    const sel = S.selected === d.uid ? 'selected' : '';
    if (tr.className !== sel) tr.className = sel;
  }
}

function newRow(uid) {
  const tr = document.createElement('tr');
  tr.dataset.uid = uid;
  for (let k = 0; k < 6; k++) tr.appendChild(document.createElement('td'));
  return tr;
}

$('devices').tBodies[0].addEventListener('click', (e) => {
  const tr = e.target.closest('tr');
  if (tr) select(tr.dataset.uid);
});
$('detail-close').onclick = () => { S.selected = null; $('device-detail').hidden = true; mark('devices'); };

function select(uid) {
  S.selected = uid;
  const d = S.devices.find((x) => x.uid === uid) || { type: '?' };
  $('device-detail').hidden = false;
  $('detail-title').textContent = `${d.type} ${uid}`;
  const params = (S.hello && S.hello.types && S.hello.types[d.type]) || [];
  $('write-param').innerHTML = params.filter((p) => p.access.includes('W'))
    .map((p) => `<option>${esc(p.name)}</option>`).join('');
  $('write-form').hidden = !(S.hello && S.hello.commands) || !$('write-param').options.length;
  $('plots').innerHTML = '';
  mark('devices');
}

$('write-form').onsubmit = (e) => {
  e.preventDefault();
  const raw = $('write-value').value.trim();
  let v;
  try { v = JSON.parse(raw); } catch { v = raw; }
  command('write', [S.selected, { [$('write-param').value]: v }]);
};

function renderPlots() {
  if (!S.selected) return;
  const now = performance.now(), uid = S.selected, box = $('plots');
  for (const [key, s] of Object.entries(S.series)) {
    if (!key.startsWith(uid + '/')) continue;
    const param = key.slice(uid.length + 1);
    let fig = box.querySelector(`figure[data-p="${CSS.escape(param)}"]`);
    if (!fig) {
      fig = document.createElement('figure');
      fig.dataset.p = param;
      fig.innerHTML = `<figcaption></figcaption><canvas width="520" height="160"></canvas>`;
      box.appendChild(fig);
    }
    const last = s.length ? s[s.length - 1][1] : null;
    fig.querySelector('figcaption').textContent = `${param} = ${last == null ? '–' : fmt(last)}`;
    plot(fig.querySelector('canvas'), s, now);
  }
}

// A line of the last 30 s, its y range from the data (at least ±0.5 around it).
function plot(cv, s, now) {
  const g = cv.getContext('2d'), W = cv.width, H = cv.height;
  g.clearRect(0, 0, W, H);
  if (!s.length) return;
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of s) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const x = (t) => W - ((now - t) / (PLOT_SECONDS * 1000)) * W;
  const y = (v) => H - ((v - lo) / (hi - lo)) * H;
  g.strokeStyle = '#ddd'; g.lineWidth = 1;
  for (let k = 1; k < 6; k++) { g.beginPath(); g.moveTo((W * k) / 6, 0); g.lineTo((W * k) / 6, H); g.stroke(); }
  if (lo < 0 && hi > 0) { g.strokeStyle = '#aaa'; g.beginPath(); g.moveTo(0, y(0)); g.lineTo(W, y(0)); g.stroke(); }
  g.strokeStyle = '#0a58ca'; g.lineWidth = 2; g.beginPath();
  s.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
  g.stroke();
  g.fillStyle = '#333'; g.font = '12px monospace';
  g.fillText(fmt(hi - pad), 4, 12); g.fillText(fmt(lo + pad), 4, H - 4); g.fillText('-30 s', W - 40, H - 4);
}

function renderPads() {
  const { first } = localPads();
  $('local-pad').textContent = first ? `this laptop: ${first}` : 'no gamepad on this laptop (press a button on one to wake it)';
  const box = $('pads');
  const shown = S.pads.filter((p) => p.connected);
  if (!shown.length) { box.innerHTML = '<div class="detail">no gamepad connected to the robot</div>'; return; }
  if (box.querySelectorAll('canvas').length !== shown.length || !box.querySelector('canvas')) {
    box.innerHTML = shown.map((p) => `<div class="detail">gamepad ${p.index}</div><canvas data-i="${p.index}" width="360" height="150"></canvas>`).join('');
  }
  for (const p of shown) drawPad(box.querySelector(`canvas[data-i="${p.index}"]`), p);
}

function drawPad(cv, p) {
  if (!cv) return;
  const g = cv.getContext('2d');
  g.clearRect(0, 0, cv.width, cv.height);
  const stick = (cx, x, y) => {
    g.strokeStyle = '#555'; g.lineWidth = 2; g.beginPath(); g.arc(cx, 55, 40, 0, 7); g.stroke();
    g.fillStyle = '#0a58ca'; g.beginPath(); g.arc(cx + x * 40, 55 - y * 40, 8, 0, 7); g.fill();
  };
  stick(55, p.axes[0], p.axes[1]);
  stick(305, p.axes[2], p.axes[3]);
  BUTTONS.forEach((name, k) => {
    const on = (p.buttons >> k) & 1, col = k % 9, row = Math.floor(k / 9);
    const bx = 110 + col * 17, by = 30 + row * 50;
    g.fillStyle = on ? '#198754' : '#ddd'; g.beginPath(); g.arc(bx, by, 7, 0, 7); g.fill();
    g.fillStyle = '#333'; g.font = '9px sans-serif'; g.save(); g.translate(bx - 3, by + 12); g.rotate(1.2); g.fillText(name, 0, 0); g.restore();
  });
}

// The field to scale (x to the right, y up, as the simulation has them): walls, tape,
// tags, the trail and the robot's footprint with a line to its front. The pose drawn is
// also on the canvas's data attributes.
function renderField() {
  const sim = S.sim, panel = $('field-panel'), cv = $('field');
  panel.hidden = !sim.field;
  if (!sim.field) return;
  const now = performance.now(), t = sim.trail;
  while (t.length && t[0][0] < now - TRAIL_SECONDS * 1000) t.shift();
  const [w, h] = sim.field.size, M = 10, MAX = 520;
  const scale = Math.min((MAX - 2 * M) / w, (MAX - 2 * M) / h);
  const cw = Math.round(w * scale + 2 * M), ch = Math.round(h * scale + 2 * M);
  if (cv.width !== cw || cv.height !== ch) { cv.width = cw; cv.height = ch; }
  const X = (x) => M + x * scale, Y = (y) => ch - M - y * scale;
  const g = cv.getContext('2d');
  g.clearRect(0, 0, cw, ch);
  g.fillStyle = '#fff'; g.fillRect(X(0), Y(h), w * scale, h * scale);
  g.strokeStyle = '#222'; g.lineWidth = 4; g.strokeRect(X(0), Y(h), w * scale, h * scale);
  g.strokeStyle = '#444'; g.lineCap = 'butt';
  for (const p of sim.field.tape) {
    g.lineWidth = Math.max(2, p.width * scale);
    g.beginPath(); g.moveTo(X(p.from[0]), Y(p.from[1])); g.lineTo(X(p.to[0]), Y(p.to[1])); g.stroke();
  }
  g.font = '11px sans-serif';
  for (const tag of sim.field.tags) {
    g.fillStyle = '#8a2be2'; g.beginPath(); g.arc(X(tag.at[0]), Y(tag.at[1]), Math.max(4, tag.radius * scale), 0, 7); g.fill();
    g.fillText(String(tag.id), X(tag.at[0]) + 7, Y(tag.at[1]) - 7);
  }
  g.strokeStyle = 'rgba(10, 88, 202, .7)'; g.lineWidth = 2; g.lineCap = 'round'; g.beginPath();
  t.forEach(([, x, y], i) => {
    const jump = i === 0 || Math.hypot(x - t[i - 1][1], y - t[i - 1][2]) > TRAIL_JUMP_M;
    if (jump) g.moveTo(X(x), Y(y)); else g.lineTo(X(x), Y(y));
  });
  g.stroke();
  const p = sim.pose;
  $('field-detail').textContent = `${fmt(w)} m × ${fmt(h)} m, simulated`;
  cv.dataset.trail = String(t.length);
  if (!p) { delete cv.dataset.x; delete cv.dataset.y; delete cv.dataset.heading; $('field-pose').textContent = 'no pose yet'; return; }
  const r = (sim.field.radius || 0.15) * scale;
  g.fillStyle = 'rgba(25, 135, 84, .35)'; g.strokeStyle = '#146c43'; g.lineWidth = 2;
  g.beginPath(); g.arc(X(p.x), Y(p.y), r, 0, 7); g.fill(); g.stroke();
  g.strokeStyle = '#c00'; g.lineWidth = 3; g.beginPath(); g.moveTo(X(p.x), Y(p.y));
  g.lineTo(X(p.x) + r * Math.cos(p.heading), Y(p.y) - r * Math.sin(p.heading)); g.stroke();
  cv.dataset.x = String(p.x); cv.dataset.y = String(p.y); cv.dataset.heading = String(p.heading);
  $('field-pose').textContent = `x ${p.x.toFixed(2)} m · y ${p.y.toFixed(2)} m · heading ${degrees(p.heading)}°`;
}

// A heading (rad, as many turns as the robot made) in degrees within ±180.
function degrees(rad) {
  const d = ((((rad * 180) / Math.PI) % 360) + 540) % 360 - 180;
  return (d === -180 ? 180 : d).toFixed(0);
}

function renderLogs() {
  if ($('log-pause').checked) return;
  const min = LEVELS.indexOf($('log-level').value), app = $('log-app').value;
  const q = $('log-search').value.toLowerCase();
  const sel = $('log-app');
  for (const a of S.apps) {
    if (a && ![...sel.options].some((o) => o.value === a)) sel.add(new Option(a, a));
  }
  const lines = [];
  for (const r of S.logs) {
    if (LEVELS.indexOf(r.level) < min || (app && r.app !== app)) continue;
    const extra = Object.entries(r).filter(([k]) => !['timestamp', 'level', 'app', 'target', 'event', 'pid', 'seq'].includes(k))
      .map(([k, v]) => `${k}=${fmt(v)}`).join(' ');
    const text = `${(r.timestamp || '').slice(11, 23)} ${String(r.level).toUpperCase().padEnd(5)} ${r.app}: ${r.event} ${extra}`;
    if (q && !text.toLowerCase().includes(q)) continue;
    lines.push(`<div class="lv-${esc(r.level)}">${esc(text)}</div>`);
  }
  const box = $('logs');
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 20;
  box.innerHTML = lines.slice(-500).join('');
  $('log-count').textContent = `${lines.length} shown of ${S.logs.length}`;
  if (atBottom) box.scrollTop = box.scrollHeight;
}
for (const id of ['log-level', 'log-app', 'log-search', 'log-pause']) $(id).addEventListener('input', () => mark('logs'));

function table(title, obj) {
  if (obj == null) return `<h3>${esc(title)}</h3><div class="no">no answer</div>`;
  const rows = [];
  const walk = (prefix, v) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(prefix ? prefix + '.' + k : k, x);
    } else rows.push(`<tr><td>${esc(prefix)}</td><td>${esc(fmt(v))}</td></tr>`);
  };
  walk('', obj);
  return `<h3>${esc(title)}</h3><table>${rows.slice(0, 60).join('')}</table>`;
}

function renderHealth() {
  const h = S.health;
  if (!h) { $('health').innerHTML = '<div class="detail">waiting for the first poll</div>'; return; }
  const procs = (h.processes || []).map((p) => `<tr><td>${esc(p.name)}</td><td>${p.uptime_s == null ? '–' : esc(Math.round(p.uptime_s)) + ' s'}</td><td>${esc(p.restarts_seen)}</td></tr>`).join('');
  $('health').innerHTML = `<h3>processes</h3><table><tr><th>service</th><th>uptime</th><th>restarts seen</th></tr>${procs}</table>` +
    table('router', h.router) + table('log forwarder', h.logfwd) + table('gamepad receiver', h.gamepad) + table('device broker', h.devices);
}

// Drawing is throttled to 10 frames a second: the driver link's 20 ms timer shares this
// thread, and a busy laptop that drew every animation frame could starve it past the
// robot's control timeout.
const DRAW_MS = 100;
let lastDraw = 0, lastSlow = 0;
function frame(now) {
  requestAnimationFrame(frame);
  if (now - lastDraw < DRAW_MS) return;
  lastDraw = now;
  const slow = now - lastSlow > 250;
  if (slow) lastSlow = now;
  if (S.dirty.header || slow) { renderHeader(); S.dirty.header = false; }
  if (S.dirty.devices || slow) { renderDevices(); S.dirty.devices = false; }
  if (S.dirty.logs) { renderLogs(); S.dirty.logs = false; }
  if (S.dirty.health) { renderHealth(); S.dirty.health = false; }
  if (S.dirty.field || (slow && S.sim.field)) { renderField(); S.dirty.field = false; }
  renderPads();
  renderPlots();
}
// Rendering runs off requestAnimationFrame (paused in a hidden tab, which also sends nothing).
requestAnimationFrame(frame);
connect();
