// Nucleon dashboard: polls /api/status and /api/history of this server and draws Chart.js charts.
// Every chart canvas carries data-points="N" (the number of points it holds), for checks by a headless browser.
(function () {
  'use strict';
  const POLL_MS = 2000;
  const MAX_LIVE_POINTS = 1800;
  const COLORS = ['#3b6fd8', '#e0713a', '#2f9e6e', '#c2417a', '#8a63d2', '#b58b12', '#1b9bb3', '#6b7280'];
  const state = { next: 0, rows: [], live: new Map(), charts: {}, selected: null, keysSeen: new Set(),
                  spikes: [], skipped: [] };
  window.nucleonDashboard = state;

  if (typeof Chart === 'undefined') {
    showError('chart library missing (vendor/chart.umd.min.js, from the org.webjars.npm:chart.js WebJar)');
    return;
  }
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 11;

  function lineChart(id, xTitle) {
    const chart = new Chart(document.getElementById(id), {
      type: 'line',
      data: { datasets: [] },
      options: {
        responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
        elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
        interaction: { mode: 'nearest', intersect: false },
        scales: { x: { type: 'linear', title: { display: true, text: xTitle } } },
        plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } }
      }
    });
    state.charts[id] = chart;
    return chart;
  }
  const charts = {
    reward: lineChart('chart-reward', 'step'),
    tokens: lineChart('chart-tokens', 'seconds'),
    stepTime: lineChart('chart-step-time', 'step'),
    staleness: lineChart('chart-staleness', 'step'),
    signals: lineChart('chart-signals', 'step'),
    busy: new Chart(document.getElementById('chart-busy'), {
      type: 'bar',
      data: { labels: [], datasets: [{ label: 'busy (window)', data: [], backgroundColor: COLORS[0] },
                                     { label: 'busy (since start)', data: [], backgroundColor: COLORS[1] }] },
      options: { responsive: true, maintainAspectRatio: false, indexAxis: 'y',
                 scales: { x: { min: 0, max: 1 } }, plugins: { legend: { position: 'bottom' } } }
    })
  };
  state.charts['chart-busy'] = charts.busy;

  // --- helpers ---------------------------------------------------------------------------------------------------
  function showError(msg) {
    const el = document.getElementById('error');
    el.hidden = !msg;
    el.textContent = msg || '';
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '-';
    if (typeof v !== 'number') return String(v);
    const d = digits === undefined ? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 1 ? 2 : 3) : digits;
    return v.toLocaleString(undefined, { maximumFractionDigits: d, minimumFractionDigits: 0 });
  }
  function duration(s) {
    if (s === null || s === undefined) return '-';
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + 'h' : '') + (h || m ? m + 'm' : '') + sec + 's';
  }
  function setText(id, v) { document.getElementById(id).textContent = v; }
  // learner steps whose gradient norm was a spike (grad_spike = 1) or whose update was skipped
  function drawWarnings() {
    const el = document.getElementById('warnings');
    const parts = [];
    const latest = a => a[a.length - 1];
    if (state.spikes.length) {
      const r = latest(state.spikes);
      parts.push('gradient spikes in ' + state.spikes.length + ' step(s), latest at step ' + stepOf(r, 0) +
        ' (norm ' + fmt(r.grad_norm) + ', largest parameter norm ' + fmt(r.grad_norm_max_param) + ')');
    }
    if (state.skipped.length) {
      parts.push('updates skipped in ' + state.skipped.length + ' step(s), latest at step ' +
        stepOf(latest(state.skipped), 0));
    }
    el.hidden = parts.length === 0;
    el.textContent = parts.length ? 'warning: ' + parts.join('; ') + ' (see nucleon.log)' : '';
    el.dataset.spikes = String(state.spikes.length);
    el.dataset.skipped = String(state.skipped.length);
  }
  // numeric fields of a row, nested objects flattened as parent.child (per-actor maps); a nested node snapshot
  // (an object with an actors array) gives actor_tokens_per_s.<actor> and actor_busy_ratio.<actor> only
  function numbers(row, prefix, out, depth) {
    out = out || {};
    depth = depth || 0;
    for (const [k, v] of Object.entries(row)) {
      const key = prefix ? prefix + '.' + k : k;
      if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
      else if (v && typeof v === 'object' && Array.isArray(v.actors)) {
        for (const a of v.actors) {
          if (!a || typeof a.actor !== 'string') continue;
          if (a.role === 'rollout' && a.tokens > 0 && typeof a.tokensPerSecond === 'number') out['actor_tokens_per_s.' + a.actor] = a.tokensPerSecond;
          if (typeof a.busyRatio === 'number' && a.busyRatio >= 0) out['actor_busy_ratio.' + a.actor] = a.busyRatio;
        }
      } else if (v && typeof v === 'object' && !Array.isArray(v) && depth < 2) numbers(v, key, out, depth + 1);
    }
    return out;
  }
  function stepOf(row, i) {
    for (const k of ['step', 'learner_step', 'version', 'policy_version']) {
      if (typeof row[k] === 'number') return row[k];
    }
    return i + 1;
  }
  function setSeries(chart, series) {  // series: [{label, data:[{x,y}]}]
    const byLabel = new Map(chart.data.datasets.map(d => [d.label, d]));
    chart.data.datasets = series.map((s, i) => {
      const d = byLabel.get(s.label) || { label: s.label, borderColor: COLORS[i % COLORS.length],
        backgroundColor: COLORS[i % COLORS.length], data: [] };
      d.data = s.data;
      return d;
    });
    chart.update('none');
    const points = series.reduce((n, s) => n + s.data.length, 0);
    chart.canvas.dataset.points = String(points);
  }
  function seriesFromRows(keys) {
    return keys.map(k => ({
      label: k,
      data: state.rows.map((r, i) => ({ x: stepOf(r.raw, i), y: r.nums[k] })).filter(p => typeof p.y === 'number')
    })).filter(s => s.data.length > 0);
  }
  function keysMatching(re, exclude) {
    return [...state.keysSeen].filter(k => re.test(k) && !(exclude && exclude.test(k))).sort();
  }

  // --- history charts (metrics.jsonl rows, whatever keys they have) -----------------------------------------------
  // tokens/s per rollout worker: per step from the history rows when they carry per-actor figures (they survive a
  // reload and the end of the run), else live samples of /api/status over time
  function drawTokens() {
    const perActor = keysMatching(/^actor_tokens_per_s\./);
    const x = charts.tokens.options.scales.x.title;
    if (perActor.length) {
      x.text = 'step';
      setSeries(charts.tokens, seriesFromRows(perActor).map(s => ({ label: s.label.replace('actor_tokens_per_s.', ''),
        data: s.data })));
    } else {
      x.text = 'seconds';
      setSeries(charts.tokens, [...state.live.entries()].sort().map(([label, data]) => ({ label, data })));
    }
  }
  function drawHistory() {
    drawTokens();
    setSeries(charts.reward, seriesFromRows(keysMatching(/(^|_)(reward_mean|accuracy|reward)$|accuracy/, /\./)));
    setSeries(charts.stepTime, seriesFromRows(keysMatching(/(learner_)?step_(time|seconds)|^step_s$/, /\./)));
    setSeries(charts.staleness, seriesFromRows(keysMatching(/^staleness/, /\./)));
    const select = document.getElementById('signal-keys');
    const all = [...state.keysSeen].filter(k => k !== 'step').sort();
    if (select.options.length !== all.length) {
      const chosen = new Set(state.selected || ['loss', 'kl', 'clip_fraction', 'entropy', 'grad_norm']);
      select.innerHTML = '';
      for (const k of all) {
        const o = document.createElement('option');
        o.value = k; o.textContent = k; o.selected = chosen.has(k);
        select.appendChild(o);
      }
      select.size = Math.min(6, Math.max(1, all.length));
    }
    const picked = [...select.selectedOptions].map(o => o.value);
    setSeries(charts.signals, seriesFromRows(picked));
  }
  document.getElementById('signal-keys').addEventListener('change', e => {
    state.selected = [...e.target.selectedOptions].map(o => o.value);
    drawHistory();
  });

  // --- status (live) --------------------------------------------------------------------------------------------
  function drawStatus(s) {
    const run = s.run || {};
    setText('run-name', run.name || '');
    setText('state', s.state || '-');
    setText('step', run.total_steps ? run.step + ' / ' + run.total_steps : fmt(run.step));
    setText('version', fmt(run.policy_version, 0));
    setText('tok-s', fmt((s.throughput || {}).rollout_tokens_per_s, 0));
    setText('learner-tok-s', fmt((s.throughput || {}).learner_tokens_per_s, 0));
    setText('stale-max', fmt((s.staleness || {}).max, 0));
    setText('elapsed', duration(run.elapsed_seconds));
    setText('eta', duration(run.eta_seconds));

    const t = typeof run.elapsed_seconds === 'number' ? run.elapsed_seconds : (s.time_ms || Date.now()) / 1000;
    const actors = s.actors || [];
    for (const a of actors) {
      if (a.role !== 'rollout') continue; // the chart is per rollout worker (the learner's row counts trained tokens)
      const key = a.actor + (actors.filter(b => b.actor === a.actor).length > 1 ? '@' + a.node : '');
      if (!state.live.has(key)) state.live.set(key, []);
      const pts = state.live.get(key);
      if (typeof a.tokens_per_s === 'number' && (!pts.length || pts[pts.length - 1].x !== t)) {
        pts.push({ x: t, y: a.tokens_per_s });
        if (pts.length > MAX_LIVE_POINTS) pts.shift();
      }
    }
    drawTokens();

    const busy = actors.filter(a => typeof a.busy_ratio === 'number');
    charts.busy.data.labels = busy.map(a => a.actor);
    charts.busy.data.datasets[0].data = busy.map(a => a.busy_ratio);
    charts.busy.data.datasets[1].data = busy.map(a => a.busy_ratio_since_start);
    charts.busy.update('none');
    charts.busy.canvas.dataset.points = String(busy.length);

    fillTable('members', (s.members || []).map(m => [m.address, m.status, (m.roles || []).join(', '),
      m.reachable ? 'yes' : 'NO']));
    fillTable('actors', actors.map(a => [a.node, a.actor, a.role, fmt(a.tokens_per_s, 0), fmt(a.trajectories_per_s, 2),
      fmt(a.tokens, 0), a.busy_ratio === null ? '-' : fmt(100 * a.busy_ratio, 0) + '%', fmt(a.mailbox_depth, 0)]), 3);
    const q = Object.entries(s.prompts || {}).map(([k, v]) => ['prompts ' + k, fmt(v, 0)]);
    if (s.replay && s.replay.groups !== null) q.push(['replay groups ready', fmt(s.replay.groups, 0)]);
    for (const [k, v] of Object.entries((s.replay || {}).dropped || {})) q.push(['dropped ' + k, fmt(v, 0)]);
    fillTable('queues', q, 1);
  }
  function fillTable(id, rows, firstNum) {
    const body = document.querySelector('#' + id + ' tbody');
    body.innerHTML = '';
    for (const r of rows) {
      const tr = document.createElement('tr');
      r.forEach((c, i) => {
        const td = document.createElement('td');
        td.textContent = c;
        if (firstNum !== undefined && i >= firstNum) td.className = 'num';
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
  }

  // --- polling --------------------------------------------------------------------------------------------------
  async function poll() {
    const errors = [];
    try {
      const r = await fetch('api/history?from=' + state.next, { cache: 'no-store' });
      if (r.ok) {
        const h = await r.json();
        if (h.next < state.next) {  // file replaced
          state.rows = []; state.keysSeen.clear(); state.spikes = []; state.skipped = [];
        }
        for (const raw of h.rows) {
          if (raw.grad_spike === 1) state.spikes.push(raw);
          if (raw.skipped_update === 1) state.skipped.push(raw);
          const nums = numbers(raw);
          Object.keys(nums).forEach(k => state.keysSeen.add(k));
          state.rows.push({ raw, nums });
        }
        state.next = h.next;
        if (h.rows.length) { drawHistory(); drawWarnings(); }
      } else errors.push('history: HTTP ' + r.status);
    } catch (e) { errors.push('history: ' + e.message); }
    try {
      const r = await fetch('api/status', { cache: 'no-store' });
      const s = await r.json();
      if (r.ok) drawStatus(s); else errors.push('status: ' + (s.error || 'HTTP ' + r.status));
    } catch (e) { errors.push('status: ' + e.message); }
    showError(errors.join('; '));
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
