// satwatt wall, live page: follows the wall's status stream and keeps the
// figures, the payments table and the chart current. No library, no inline
// code (the page's Content-Security-Policy forbids it). The formatters
// mirror web/format.go exactly: change both together.
'use strict';

(function () {
  const root = document.getElementById('live');
  if (!root) return;

  // ---- formatting (integers only, like the Go side) ----

  function num(v) {
    return typeof v === 'number' && isFinite(v) ? Math.trunc(v) : 0;
  }
  // idiv divides exactly for any safe integer, where Math.floor(a / b) can
  // round up near 2^53.
  function idiv(a, b) {
    return (a - (a % b)) / b;
  }
  function group(n) {
    let s = String(n);
    let out = '';
    while (s.length > 3) {
      out = ',' + s.slice(-3) + out;
      s = s.slice(0, -3);
    }
    return s + out;
  }
  function signed(neg, zero, s) {
    return neg && !zero ? '-' + s : s;
  }
  function fmtSat(msat) {
    msat = num(msat);
    const u = Math.abs(msat);
    let s = group(idiv(u, 1000));
    const frac = u % 1000;
    if (frac !== 0) s += '.' + String(frac).padStart(3, '0').replace(/0+$/, '');
    return signed(msat < 0, u === 0, s) + ' sat';
  }
  function fmtEnergy(mwh) {
    mwh = num(mwh);
    const u = Math.abs(mwh);
    const wh = idiv(u + 500, 1000);
    if (wh < 1000) return signed(mwh < 0, wh === 0, String(wh)) + ' Wh';
    const c = idiv(u + 5000, 10000);
    return signed(mwh < 0, false, group(idiv(c, 100)) + '.' + String(c % 100).padStart(2, '0')) + ' kWh';
  }
  function fmtPower(w) {
    w = num(w);
    const u = Math.abs(w);
    if (u < 1000) return signed(w < 0, u === 0, String(u)) + ' W';
    const c = idiv(u + 5, 10);
    return signed(w < 0, false, group(idiv(c, 100)) + '.' + String(c % 100).padStart(2, '0')) + ' kW';
  }
  function fmtPrice(p) {
    p = num(p);
    return signed(p < 0, p === 0, group(Math.abs(p))) + ' sat/kWh';
  }
  function fmtSoC(p) {
    if (typeof p !== 'number' || !isFinite(p) || p < 0) return 'not shared by the car';
    p = Math.trunc(p);
    return idiv(p, 10) + '.' + (p % 10) + ' %';
  }
  function pad2(n) {
    return String(n).padStart(2, '0');
  }
  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000)) || 0;
    const h = idiv(s, 3600), m = idiv(s, 60) % 60, sec = s % 60;
    if (h > 0) return h + ' h ' + pad2(m) + ' min ' + pad2(sec) + ' s';
    if (m > 0) return m + ' min ' + pad2(sec) + ' s';
    return sec + ' s';
  }
  // Times show in the wall's zone, whatever the browser's: the page carries
  // the wall's UTC offset (utcOffsetMin, below).
  function fmtTime(iso) {
    const ms = Date.parse(iso);
    if (!isFinite(ms)) return '—';
    const d = new Date(ms + utcOffsetMin * 60000);
    return d.getUTCFullYear() + '-' + pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate()) + ' ' +
      pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes()) + ':' + pad2(d.getUTCSeconds());
  }
  const connectorWords = {
    idle: 'idle',
    awaiting_payment: 'awaiting payment',
    energising: 'charging',
    suspended: 'suspended for non-payment',
    ended: 'ended',
    fault: 'fault',
  };
  function fmtConnector(c) {
    if (Object.prototype.hasOwnProperty.call(connectorWords, c)) return connectorWords[c];
    return c ? String(c).replace(/_/g, ' ') : 'unknown';
  }
  function fmtEVSE(e) {
    e = e || {};
    const parts = [];
    if (!e.reachable) {
      parts.push('unreachable');
    } else {
      parts.push('reachable', 'pilot ' + (e.pilot || '?'), 'contactor ' + (e.contactor_closed ? 'closed' : 'open'));
      parts.push(e.fault ? 'fault: ' + e.fault : 'no fault');
    }
    if (e.error) parts.push('error: ' + e.error);
    return parts.join(', ');
  }
  function shortHash(h) {
    h = String(h || '');
    return h.length <= 20 ? h : h.slice(0, 8) + '…' + h.slice(-8);
  }

  // ---- the page's elements ----

  const utcOffsetMin = parseInt(root.dataset.utcOffset || '0', 10) || 0;

  const fields = {};
  root.querySelectorAll('[data-field]').forEach(function (el) {
    fields[el.dataset.field] = el;
  });
  function setText(name, text) {
    const el = fields[name];
    if (el && el.textContent !== text) el.textContent = text;
  }
  const badge = fields.connector;
  const heading = document.getElementById('session-heading');
  const receiptLink = document.getElementById('receipt-link');
  const creditTile = document.getElementById('credit-tile');
  const creditGrace = document.getElementById('credit-grace');
  const priceLabel = document.getElementById('price-label');
  const tbody = document.getElementById('payments');
  const chart = document.getElementById('chart');
  const indicator = document.getElementById('stream-state');

  // The wall's clock minus the browser's, so the elapsed time does not
  // depend on the browser's clock being right.
  let skew = 0;
  const renderedAt = Date.parse(root.dataset.now || '');
  if (isFinite(renderedAt)) skew = renderedAt - Date.now();

  let started = NaN, ended = NaN;
  if (fields.elapsed) {
    started = Date.parse(fields.elapsed.dataset.started || '');
    ended = Date.parse(fields.elapsed.dataset.ended || '');
  }
  function tick() {
    if (!isFinite(started)) return;
    const end = isFinite(ended) ? ended : Date.now() + skew;
    setText('elapsed', fmtDuration(end - started));
  }

  function renderPayments(list) {
    const rows = Array.isArray(list) ? list.slice().reverse() : [];
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      tr.className = 'empty';
      const td = document.createElement('td');
      td.colSpan = 3;
      td.textContent = 'No payments yet.';
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    rows.forEach(function (p) {
      const tr = document.createElement('tr');
      const time = document.createElement('td');
      time.className = 'nowrap';
      time.textContent = fmtTime(p.settled_at);
      const amount = document.createElement('td');
      amount.className = 'num';
      amount.textContent = fmtSat(p.amount_msat);
      if (p.late) {
        const tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = 'after end';
        amount.append(' ', tag);
      }
      const hash = document.createElement('td');
      const code = document.createElement('code');
      code.className = 'hash';
      code.title = String(p.payment_hash || '');
      code.textContent = shortHash(p.payment_hash);
      hash.appendChild(code);
      tr.append(time, amount, hash);
      tbody.appendChild(tr);
    });
  }

  // ---- the chart: power (left axis, kW) and credit (right axis, sat) ----

  const NS = chart.namespaceURI; // the inline <svg>'s namespace
  // The chart is drawn at the size it shows, so its text stays legible on
  // a phone; L..R and T..B bound the plot area.
  const H = 280, L = 56, T = 36, B = 244;
  let W = 720, R = 656;
  const MAX_POINTS = 2000;
  let chartId = root.dataset.session || root.dataset.last || '';
  let chartStart = started;
  let points = [];
  let fetchSeq = 0;

  function svg(parent, name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    parent.appendChild(e);
    return e;
  }
  function nice125(x) {
    let mag = Math.pow(10, Math.floor(Math.log10(x)));
    for (;;) {
      for (const m of [1, 2, 5]) if (m * mag >= x) return m * mag;
      mag *= 10;
    }
  }
  function niceAxis(lo, hi, n, minStep) {
    const step = nice125(Math.max((hi - lo) / n, minStep));
    let a = Math.floor(lo / step) * step, b = Math.ceil(hi / step) * step;
    if (b <= a) b = a + step;
    return { lo: a, hi: b, step: step };
  }
  function trimNum(v) {
    return String(Math.round(v * 100) / 100);
  }
  function satLabel(msat) {
    const s = Math.round(msat / 1000);
    return (s < 0 ? '-' : '') + group(Math.abs(s));
  }
  function timeLabel(min) {
    if (min < 60) return min + ' min';
    const h = Math.floor(min / 60), m = min % 60;
    return h + ' h' + (m ? ' ' + pad2(m) : '');
  }

  function draw() {
    W = Math.max(320, Math.min(1000, Math.round(chart.getBoundingClientRect().width) || 720));
    R = W - 64;
    chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    while (chart.firstChild) chart.removeChild(chart.firstChild);
    chart.dataset.points = String(points.length);
    chart.dataset.session = chartId;
    let t0 = chartStart;
    if (points.length && (!isFinite(t0) || points[0].t < t0)) t0 = points[0].t;
    if (!isFinite(t0)) t0 = 0;
    const t1 = Math.max(points.length ? points[points.length - 1].t : t0, t0 + 60000);
    let pMax = 0, cMin = 0, cMax = 0;
    for (const p of points) {
      pMax = Math.max(pMax, p.power_w);
      cMin = Math.min(cMin, p.credit_msat);
      cMax = Math.max(cMax, p.credit_msat);
    }
    const pa = niceAxis(0, Math.max(pMax, 1000), 4, 100);
    const ca = niceAxis(cMin, Math.max(cMax, 1000), 4, 1000);
    const x = function (t) { return (L + (R - L) * (t - t0) / (t1 - t0)).toFixed(1); };
    const yp = function (w) { return (B - (B - T) * (w - pa.lo) / (pa.hi - pa.lo)).toFixed(1); };
    const yc = function (m) { return (B - (B - T) * (m - ca.lo) / (ca.hi - ca.lo)).toFixed(1); };

    const grid = svg(chart, 'g', { class: 'grid' });
    const labels = svg(chart, 'g', { class: 'tick-labels' });
    for (let v = pa.lo; v <= pa.hi + pa.step / 2; v += pa.step) {
      const y = yp(v);
      svg(grid, 'line', { x1: L, x2: R, y1: y, y2: y });
      svg(labels, 'text', { x: L - 6, y: y, dy: 4, 'text-anchor': 'end' }, trimNum(v / 1000));
    }
    for (let v = ca.lo; v <= ca.hi + ca.step / 2; v += ca.step) {
      svg(labels, 'text', { x: R + 6, y: yc(v), dy: 4, 'text-anchor': 'start' }, satLabel(v));
    }
    const span = (t1 - t0) / 60000;
    const maxTicks = W < 500 ? 4 : 6;
    const stepMin = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].find(function (s) { return span / s <= maxTicks; }) || 2880;
    for (let m = 0; m <= span; m += stepMin) {
      svg(labels, 'text', { x: x(t0 + m * 60000), y: B + 16, 'text-anchor': 'middle' }, timeLabel(m));
    }
    // Credit goes negative within the grace: the zero line shows where.
    svg(chart, 'line', { class: 'zero', x1: L, x2: R, y1: yc(0), y2: yc(0) });
    const axis = svg(chart, 'g', { class: 'axis' });
    svg(axis, 'line', { x1: L, y1: B, x2: R, y2: B });
    svg(axis, 'line', { x1: L, y1: T, x2: L, y2: B });
    svg(axis, 'line', { x1: R, y1: T, x2: R, y2: B });
    svg(chart, 'text', { class: 'axis-title', x: L, y: 28, 'text-anchor': 'middle' }, 'kW');
    svg(chart, 'text', { class: 'axis-title', x: R, y: 28, 'text-anchor': 'middle' }, 'sat');
    svg(chart, 'text', { class: 'axis-title', x: (L + R) / 2, y: 272, 'text-anchor': 'middle' }, 'time since the session started');
    const legend = svg(chart, 'g', { class: 'legend' });
    svg(legend, 'rect', { class: 'swatch-power', x: L + 24, y: 8, width: 12, height: 12 });
    svg(legend, 'text', { x: L + 42, y: 18 }, 'power (kW)');
    svg(legend, 'rect', { class: 'swatch-credit', x: L + 130, y: 8, width: 12, height: 12 });
    svg(legend, 'text', { x: L + 148, y: 18 }, 'credit (sat)');

    if (points.length === 0) {
      svg(chart, 'text', { class: 'chart-empty', x: (L + R) / 2, y: (T + B) / 2, 'text-anchor': 'middle' },
        chartId ? 'waiting for data…' : 'no session');
      return;
    }
    let dp = '', dc = '';
    points.forEach(function (p, i) {
      const cmd = i === 0 ? 'M' : ' L';
      dp += cmd + x(p.t) + ' ' + yp(p.power_w);
      dc += cmd + x(p.t) + ' ' + yc(p.credit_msat);
    });
    svg(chart, 'path', { class: 'line-power', d: dp });
    svg(chart, 'path', { class: 'line-credit', d: dc });
  }
  // thin halves the density of the older half when there are too many
  // points, so a long session keeps its shape at a bounded cost.
  function thin() {
    while (points.length > MAX_POINTS) {
      const half = Math.floor(points.length / 2);
      points = points.slice(0, half).filter(function (_, i) { return i % 2 === 0; }).concat(points.slice(half));
    }
  }
  function point(p) {
    return { t: num(p.t), power_w: num(p.power_w), credit_msat: num(p.credit_msat) };
  }
  function fetchSeries(id) {
    const seq = ++fetchSeq;
    fetch('/api/sessions/' + encodeURIComponent(id) + '/series', { headers: { Accept: 'application/json' }, cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('series: HTTP ' + r.status);
        return r.json();
      })
      .then(function (body) {
        if (seq !== fetchSeq || id !== chartId) return; // a newer session took over
        const series = (body && Array.isArray(body.points) ? body.points : []).map(point);
        const lastT = series.length ? series[series.length - 1].t : -Infinity;
        // Live points that arrived while fetching follow the series.
        points = series.concat(points.filter(function (p) { return p.t > lastT; }));
        thin();
        draw();
      })
      .catch(function () {
        // Without the past the chart still draws the live points.
      });
  }
  function showSession(id, s) {
    if (id === chartId) return;
    chartId = id;
    points = [];
    chartStart = s ? Date.parse(s.started_at) : NaN;
    if (id) fetchSeries(id);
  }

  // ---- status events ----

  let updates = 0;
  function onStatus(ev) {
    let st;
    try {
      st = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (!st || typeof st !== 'object') return;
    const at = Date.parse(st.at);
    if (isFinite(at)) skew = at - Date.now();
    const sess = st.session || null, last = st.last || null;
    const shown = sess || last;

    const connector = String(st.connector || '');
    if (badge) {
      badge.className = 'badge badge-' + connector;
      badge.dataset.state = connector;
      setText('connector', fmtConnector(connector));
    }
    setText('why', String(st.why || ''));
    if (heading) heading.textContent = sess ? 'Session' : last ? 'Last session' : 'No session';
    root.dataset.session = sess ? String(sess.id) : '';
    root.dataset.last = last ? String(last.id) : '';

    setText('power', fmtPower(sess ? sess.power_w : st.evse ? st.evse.power_w : 0));
    const dash = '—';
    setText('delivered', shown ? fmtEnergy(shown.delivered_mwh) : dash);
    setText('paid_energy', shown ? fmtEnergy(shown.paid_energy_mwh) : dash);
    setText('credit', shown ? fmtSat(shown.credit_msat) : dash);
    setText('credit_energy', shown ? fmtEnergy(shown.credit_mwh) : dash);
    const inGrace = !!shown && num(shown.credit_msat) < 0;
    if (creditTile) creditTile.classList.toggle('tile-negative', inGrace);
    if (creditGrace) creditGrace.hidden = !inGrace;
    setText('price', fmtPrice(sess ? sess.price_msat_per_wh : st.next_price_msat_per_wh));
    if (priceLabel) priceLabel.textContent = sess ? 'Price' : 'Price (next session)';
    setText('received', shown ? fmtSat(shown.paid_msat) : dash);
    setText('soc', shown ? fmtSoC(shown.soc_permille) : dash);
    setText('payments', shown ? String(num(shown.payments)) : dash);
    setText('session_id', shown ? String(shown.id) : dash);
    if (receiptLink) {
      receiptLink.hidden = !shown;
      receiptLink.setAttribute('href', shown ? '/sessions/' + encodeURIComponent(shown.id) : '/');
    }
    started = shown ? Date.parse(shown.started_at) : NaN;
    ended = shown && shown.ended_at ? Date.parse(shown.ended_at) : NaN;
    if (isFinite(started)) tick();
    else setText('elapsed', dash);
    renderPayments(shown ? shown.last_payments : []);

    setText('evse', fmtEVSE(st.evse));
    setText('lightning', st.lightning && st.lightning.connected ? 'connected' : 'not connected');
    if (typeof st.next_price_msat_per_wh === 'number') setText('next_price', fmtPrice(st.next_price_msat_per_wh));

    showSession(shown ? String(shown.id) : '', shown);
    if (isFinite(started)) chartStart = started;
    if (sess && String(sess.id) === chartId && isFinite(at)) {
      const p = point({ t: at, power_w: sess.power_w, credit_msat: sess.credit_msat });
      const lastP = points[points.length - 1];
      if (lastP && lastP.t === p.t) points[points.length - 1] = p;
      else if (!lastP || p.t > lastP.t) points.push(p);
      thin();
    }
    draw();

    // Last, so a reader of the counter sees the page already updated.
    updates++;
    document.body.dataset.updates = String(updates);
  }

  // ---- the stream ----

  function setStream(state, text) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.dataset.state = state;
    indicator.textContent = text;
  }
  let retries = 0;
  function connect() {
    const es = new EventSource(root.dataset.stream || '/api/status/stream');
    setStream('connecting', 'connecting…');
    es.onopen = function () {
      retries = 0;
      setStream('live', 'live');
    };
    es.onerror = function () {
      setStream('reconnecting', 'reconnecting…');
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (the wall answered with an error, say too
        // many open streams): try again later, backing off.
        const delay = Math.min(60000, 2000 * Math.pow(2, retries++));
        setTimeout(connect, delay);
      }
    };
    es.addEventListener('status', onStatus);
  }

  // Redraw at the new width when the window changes, at most once a frame.
  let resizePending = false;
  window.addEventListener('resize', function () {
    if (resizePending) return;
    resizePending = true;
    window.requestAnimationFrame(function () {
      resizePending = false;
      draw();
    });
  });

  draw();
  if (chartId) fetchSeries(chartId);
  connect();
  setInterval(tick, 1000);
})();
