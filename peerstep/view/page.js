// peerstep view: draws the run model embedded in #run-data. Every text goes through textContent (model output is
// untrusted); nothing is fetched except, on a live page, the model's own JSON endpoint on the same origin.
(function () {
  'use strict';
  var M = JSON.parse(document.getElementById('run-data').textContent);
  var app = document.getElementById('app');
  var KIND = {reason: 'think', tool_call: 'tool', observation: 'obs', summary: 'summary', peer_inject: 'peers',
              final: 'final', prune: 'pruned', error: 'error', budget: 'budget', corrupt: 'corrupt',
              verify: 'verify', resume: 'resume'};
  // rounds drawn at first: all of a small run; of a large one, rounds up to about DRAWN steps (the rest are one
  // line each until opened, by a click, a search hit or a jump to an error)
  var DRAWN = 1000;
  var state = {open: {}, query: '', hits: [], hit: -1, err: -1, compact: null, segs: null, known: 0};
  var els = {};   // step id -> element
  var byId = {};  // step id -> step
  var grid = null, wrap = null, timer = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function short(t, n) { t = String(t === null || t === undefined ? '' : t).replace(/\s+/g, ' ').trim();
    return t.length > n ? t.slice(0, n - 1) + '\u2026' : t; }
  function chip(text, cls, title) { var c = el('span', 'chip ' + (cls || ''), text); if (title) c.title = title;
    return c; }
  function verdict(ok) { return ok === true ? chip('\u2713 correct', 'good') : ok === false ? chip('\u2717 wrong', 'bad')
    : null; }
  function num(x) { return typeof x === 'number' && x % 1 ? String(Number(x.toPrecision(3))) : String(x); }
  function fmtTime(s) { if (!s) return ''; try { return new Date(s * 1000).toISOString().replace('T', ' ')
    .slice(0, 19) + ' UTC'; } catch (e) { return ''; } }

  function header() {
    var r = M.run || {}, h = el('header', 'top');
    if (M.back) { var back = el('a', 'back', '\u2190 ' + M.back.text); back.href = M.back.href; h.appendChild(back); }
    var title = el('h1', null, 'run ' + (r.run_id || '?'));
    h.appendChild(title);
    var chips = el('div', 'chips');
    chips.appendChild(chip(r.status || 'unknown', 'status-' + (r.status || 'unknown'), r.status_reason || ''));
    if (r.strategy) chips.appendChild(chip(r.strategy + (r.n > 1 ? '@' + r.n : '')));
    if (r.model) chips.appendChild(chip(r.model));
    if (r.dataset) chips.appendChild(chip(r.dataset + (r.task_id ? ' / ' + r.task_id : '')));
    chips.appendChild(chip(M.steps.length + ' steps'));
    if (M.end && M.end.tokens !== undefined) chips.appendChild(chip(M.end.tokens + ' tokens'));
    if (r.created_at) chips.appendChild(chip(fmtTime(r.created_at)));
    if (M.corrupt) chips.appendChild(chip(M.corrupt + ' corrupt row' + (M.corrupt > 1 ? 's' : ''), 'bad'));
    h.appendChild(chips);
    if (r.question) { var q = el('div', 'question', r.question); q.title = 'the question'; h.appendChild(q); }
    var ans = el('div', 'answerline');
    ans.appendChild(el('b', null, 'answer: '));
    ans.appendChild(el('span', 'answer', r.answer === null || r.answer === undefined ? '(none)' : r.answer));
    if (r.gold !== null && r.gold !== undefined) ans.appendChild(el('span', 'gold', ' gold: ' + r.gold));
    var v = verdict(r.correct); if (v) ans.appendChild(v);
    h.appendChild(ans);
    if (r.status === 'running' && !M.live) {
      h.appendChild(el('div', 'note', 'A snapshot: the run was still running when this page was written ('
        + M.last_seq + ' rows). `peerstep view --serve` follows it live.'));
    }
    if (M.end && M.end.error) h.appendChild(el('div', 'note bad', 'run error: ' + M.end.error));
    if (M.vote) h.appendChild(vote());
    return h;
  }

  function vote() {
    var v = M.vote, box = el('section', 'vote'); box.id = 'vote';
    var head = el('div', 'vote-head');
    head.appendChild(el('b', null, 'Vote (' + (v.method || '?') + '): '));
    head.appendChild(el('span', 'answer', v.answer === null ? '(no answer)' : v.answer));
    if (v.support !== null && v.support !== undefined) head.appendChild(el('span', null, '  ' + num(v.support) + ' of '
      + num(v.total)));
    if (v.gold !== null && v.gold !== undefined) head.appendChild(el('span', 'gold', '  gold: ' + v.gold));
    var ok = verdict(v.correct); if (ok) head.appendChild(ok);
    if (v.stop_reason) head.appendChild(el('span', 'muted', '  (' + v.stop_reason + ')'));
    box.appendChild(head);
    var list = el('div', 'groups');
    v.groups.forEach(function (g) {
      var row = el('div', 'group' + (g.won ? ' won' : ''));
      row.appendChild(el('span', 'answer', g.answer === null ? '(none)' : g.answer));
      row.appendChild(el('span', 'members', g.trajectories.map(function (t) { return 'T' + t; }).join(' ')));
      row.appendChild(el('span', 'weight', 'weight ' + num(g.weight)));
      if (g.won) row.appendChild(chip('won', 'won-chip'));
      var c = verdict(g.correct); if (c) row.appendChild(c);
      list.appendChild(row);
    });
    box.appendChild(list);
    return box;
  }

  function toolbar() {
    var bar = el('div', 'toolbar');
    var input = el('input'); input.id = 'search'; input.type = 'search';
    input.placeholder = 'search steps: text, tool arguments, outputs'; input.value = state.query;
    input.addEventListener('input', function () { clearTimeout(timer);
      timer = setTimeout(function () { search(input.value); }, 120); });
    input.addEventListener('keydown', function (e) { if (e.key === 'Enter') { if (input.value !== state.query) search(input.value);
      step(e.shiftKey ? -1 : 1); } });
    bar.appendChild(input);
    var count = el('span', 'count', ''); count.id = 'hit-count'; bar.appendChild(count);
    bar.appendChild(button('\u25b2', 'previous match', function () { step(-1); }, 'prev-hit'));
    bar.appendChild(button('\u25bc', 'next match', function () { step(1); }, 'next-hit'));
    var errs = errors();
    var eb = button('next error (' + errs.length + ')', 'jump to the next error, failed tool call or corrupt row',
      nextError, 'next-error');
    if (!errs.length) eb.disabled = true;
    bar.appendChild(eb);
    bar.appendChild(button('expand all', 'open every step', function () { setAll(true); }, 'expand-all'));
    bar.appendChild(button('collapse all', 'close every step', function () { setAll(false); }, 'collapse-all'));
    bar.appendChild(button('all rounds', 'draw every round (slow on very large runs)', function () {
      for (var k = 0; k < M.segments; k++) state.segs[k] = true; render(); }, 'all-rounds'));
    bar.appendChild(button('narrow', 'narrow or wide columns', function () {
      state.compact = !isCompact(); applyWidth(); drawLinks(); }, 'toggle-width'));
    if (M.live) { var live = el('span', 'live', M.run.status === 'running' ? 'live' : 'finished'); live.id = 'live';
      bar.appendChild(live); }
    var legend = el('span', 'legend');
    ['reason', 'tool_call', 'summary', 'peer_inject', 'budget', 'error', 'final'].forEach(function (k) {
      legend.appendChild(el('span', 'tag k-' + k, KIND[k])); });
    bar.appendChild(legend);
    return bar;
  }
  function button(text, title, fn, id) { var b = el('button', null, text); b.title = title; b.id = id;
    b.addEventListener('click', fn); return b; }
  function isCompact() { return state.compact === null ? M.columns.length > 12 : state.compact; }
  function applyWidth() { if (grid) grid.style.setProperty('--colw', isCompact() ? '190px' : '320px'); }

  function body() {
    wrap = el('div', 'wrap'); wrap.id = 'wrap';
    grid = el('div', 'grid'); grid.id = 'grid';
    var cols = M.columns, pos = {};
    cols.forEach(function (c, i) { pos[c.tid] = i; });
    grid.style.gridTemplateColumns = 'repeat(' + Math.max(cols.length, 1) + ', var(--colw))';
    applyWidth();
    var frag = document.createDocumentFragment();
    cols.forEach(function (c) { frag.appendChild(colHead(c)); });
    var cells = {};
    M.steps.forEach(function (s) { byId[s.id] = s; var k = s.seg + ':' + s.tid;
      (cells[k] = cells[k] || []).push(s); });
    var events = {};
    M.events.forEach(function (e) { byId[e.id] = e; (events[e.seg] = events[e.seg] || []).push(e); });
    if (state.segs === null) {
      state.segs = {};
      var counts = segCounts(), shown = 0;
      for (var k = 0; k < M.segments; k++) {
        if (shown < DRAWN || k === 0) state.segs[k] = true;
        shown += counts[k] || 0;
      }
      state.known = M.segments;
    }
    for (; state.known < M.segments; state.known++) state.segs[state.known] = true;  // a live run's new rounds
    for (var seg = 0; seg < M.segments; seg++) {
      var empty = !events[seg] && !cols.some(function (c) { return cells[seg + ':' + c.tid]; });
      if (empty && seg > 0) { if (M.bands[seg]) frag.appendChild(band(M.bands[seg])); continue; }
      if (!state.segs[seg]) {
        frag.appendChild(folded(seg, cols, cells));
        if (M.bands[seg]) frag.appendChild(band(M.bands[seg]));
        continue;
      }
      cols.forEach(function (c) {
        var cell = el('div', 'cell' + (greyed(c) ? ' greyed' : ''));
        cell.dataset.tid = c.tid; cell.dataset.seg = seg;
        (cells[seg + ':' + c.tid] || []).forEach(function (s) { cell.appendChild(stepEl(s)); });
        frag.appendChild(cell);
      });
      (events[seg] || []).forEach(function (e) { frag.appendChild(eventRow(e)); });
      if (M.bands[seg]) frag.appendChild(band(M.bands[seg]));
    }
    grid.appendChild(frag);
    var svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.id = 'links'; svg.setAttribute('class', 'links');
    grid.appendChild(svg);
    wrap.appendChild(grid);
    return wrap;
  }
  function segCounts() { var n = {}; M.steps.forEach(function (s) { n[s.seg] = (n[s.seg] || 0) + 1; }); return n; }
  function folded(seg, cols, cells) {
    var d = el('div', 'folded'); d.dataset.seg = seg;
    var n = 0, errs = 0;
    cols.forEach(function (c) { (cells[seg + ':' + c.tid] || []).forEach(function (s) { n++; if (s.err) errs++; }); });
    var label = el('span', 'folded-label');
    label.appendChild(el('b', null, 'round ' + (seg + 1) + ': ' + n + ' steps'));
    label.appendChild(el('span', 'muted', (errs ? ' \u00b7 ' + errs + ' errors' : '') + ' \u00b7 click to show'));
    d.appendChild(label);
    d.addEventListener('click', function () { openSeg(seg); });
    return d;
  }
  function openSeg(seg) { state.segs[seg] = true; render(); }
  function greyed(c) { return c.state === 'pruned' || c.state === 'failed'; }

  function colHead(c) {
    var h = el('div', 'colhead' + (greyed(c) ? ' greyed' : '')); h.dataset.tid = c.tid; h.dataset.state = c.state;
    var top = el('div', 'colname');
    top.appendChild(el('b', null, 'T' + c.tid));
    top.appendChild(chip(c.state, 'st-' + c.state));
    var v = verdict(c.correct); if (v) top.appendChild(v);
    h.appendChild(top);
    if (c.answer !== null && c.answer !== undefined) h.appendChild(el('div', 'colanswer', 'answer: ' + short(c.answer, 60)));
    h.appendChild(el('div', 'muted', c.steps + ' steps \u00b7 ' + c.tokens + ' tokens'
      + (c.errors ? ' \u00b7 ' + c.errors + ' errors' : '')));
    if (greyed(c) && c.reason) { var r = el('div', 'reason', c.reason); h.appendChild(r); }
    return h;
  }

  function band(b) {
    var d = el('div', 'band'); d.dataset.round = b.round;
    var inner = el('div', 'band-label');
    inner.appendChild(el('b', null, 'barrier \u00b7 end of round ' + b.round));
    var tl = function (xs) {
      if (!xs || !xs.length) return 'none';
      return xs.length > 12 ? xs.length + ' trajectories' : xs.map(function (t) { return 'T' + t; }).join(' ');
    };
    d.title = 'active: ' + (b.active || []).join(', ') + '; finished: ' + (b.finished || []).join(', ');
    inner.appendChild(el('span', null, '  active: ' + tl(b.active) + '  \u00b7  finished: ' + tl(b.finished)));
    if (b.text) inner.appendChild(el('span', 'muted', '  \u00b7  ' + b.text));
    d.appendChild(inner);
    return d;
  }

  function eventRow(e) {
    var d = el('div', 'event step' + (e.err ? ' err' : '')); d.dataset.kind = e.kind; d.dataset.id = e.id;
    var line = el('div', 'line'); line.appendChild(el('span', 'tag k-' + e.kind, KIND[e.kind] || e.kind));
    line.appendChild(el('span', 'txt', e.line || e.kind)); d.appendChild(line);
    line.addEventListener('click', function () { toggle(e.id); });
    els[e.id] = d;
    if (state.open[e.id]) d.appendChild(detail(e));
    return d;
  }

  function stepEl(s) {
    var d = el('div', 'step k-' + s.kind + (s.err ? ' err' : '') + (s.budget ? ' budget' : ''));
    d.dataset.kind = s.kind; d.dataset.id = s.id;
    var line = el('div', 'line');
    line.appendChild(el('span', 'tag k-' + s.kind, KIND[s.kind] || s.kind));
    var text = s.line || s.kind;
    if (s.result) text += '  \u2192 ' + short(s.result.output, 80) + (s.result.ok === false ? ' (failed)' : '')
      + (s.result.timed_out ? ' (timed out)' : '');
    line.appendChild(el('span', 'txt', text));
    (s.badges || []).forEach(function (b) { var x = el('span', 'badge ' + (b.tone || ''), b.text);
      x.title = b.title || ''; line.appendChild(x); });
    line.addEventListener('click', function () { toggle(s.id); });
    if (s.kind === 'summary' || s.kind === 'peer_inject') {
      d.addEventListener('mouseenter', function () { highlight(s.id, true); });
      d.addEventListener('mouseleave', function () { highlight(s.id, false); });
    }
    d.appendChild(line);
    els[s.id] = d;
    if (state.open[s.id]) d.appendChild(detail(s));
    return d;
  }

  function detail(s) {
    var d = el('div', 'detail');
    if (s.text) d.appendChild(el('pre', 'text', s.text));
    if (s.tool) { d.appendChild(el('div', 'label', 'arguments'));
      d.appendChild(el('pre', 'args', typeof s.tool.arguments === 'string' ? s.tool.arguments
        : JSON.stringify(s.tool.arguments, null, 2))); }
    if (s.result) { d.appendChild(el('div', 'label', 'result' + (s.result.ok === false ? ' (failed)' : '')
      + (s.result.latency ? ' in ' + s.result.latency.toFixed(2) + ' s' : '')));
      d.appendChild(el('pre', 'output' + (s.result.ok === false ? ' bad' : ''), s.result.output)); }
    if (s.kind === 'peer_inject' && s.sources) {
      M.links.filter(function (l) { return l.to === s.id; }).forEach(function (l) {
        d.appendChild(el('div', 'muted', 'from T' + l.src + ' via ' + l.router + ', round ' + l.round
          + (l.sim !== null && l.sim !== undefined ? ', similarity ' + l.sim : '')
          + (l.from ? '' : ' (its summary is not in the log)'))); });
    }
    var m = s.meta ? Object.keys(s.meta).filter(function (k) { return s.meta[k] !== null && s.meta[k] !== undefined; })
      .map(function (k) { var x = s.meta[k]; return k + ' ' + (typeof x === 'number' && x % 1 ? x.toFixed(2) : x); })
      : [];
    if (s.data && Object.keys(s.data).length) m.push('data ' + JSON.stringify(s.data));
    m.push('step ' + s.id + ' \u00b7 row ' + s.seq);
    d.appendChild(el('div', 'muted small', m.join(' \u00b7 ')));
    return d;
  }

  function toggle(id, open) {
    var e = els[id], s = byId[id]; if (!e || !s) return;
    var want = open === undefined ? !state.open[id] : open;
    var det = e.querySelector(':scope > .detail');
    if (want && !det) e.appendChild(detail(s));
    if (!want && det) det.remove();
    if (want) state.open[id] = true; else delete state.open[id];
    e.classList.toggle('open', want);
    if (open === undefined) drawLinks();
  }
  function setAll(open) { Object.keys(els).forEach(function (id) { toggle(id, open); }); drawLinks(); }

  function hay(s) {
    if (s._h === undefined) {
      s._h = [s.line, s.text, s.tool ? JSON.stringify(s.tool.arguments) : '', s.result ? s.result.output : '',
        'T' + s.tid].join('\n').toLowerCase();
    }
    return s._h;
  }
  function search(q) {
    state.query = q; var needle = q.trim().toLowerCase();
    state.hits.forEach(function (id) { if (els[id]) els[id].classList.remove('hit', 'current'); });
    state.hits = needle ? M.steps.concat(M.events).filter(function (s) { return hay(s).indexOf(needle) >= 0; })
      .map(function (s) { return s.id; }) : [];
    state.hits.forEach(function (id) { if (els[id]) els[id].classList.add('hit'); });
    state.hit = -1;
    document.getElementById('hit-count').textContent = needle ? state.hits.length + ' match'
      + (state.hits.length === 1 ? '' : 'es') : '';
  }
  function step(dir) {
    if (!state.hits.length) return;
    state.hit = (state.hit + dir + state.hits.length) % state.hits.length;
    focus(state.hits[state.hit]);
    document.getElementById('hit-count').textContent = (state.hit + 1) + ' / ' + state.hits.length;
  }
  function errors() { return M.steps.concat(M.events).filter(function (s) { return s.err; })
    .sort(function (a, b) { return a.seq - b.seq; }).map(function (s) { return s.id; }); }
  function nextError() {
    var errs = errors(); if (!errs.length) return;
    state.err = (state.err + 1) % errs.length;
    focus(errs[state.err]);
  }
  function focus(id) {
    var prev = document.querySelectorAll('.current');
    for (var i = 0; i < prev.length; i++) prev[i].classList.remove('current');
    var s = byId[id]; if (!s) return;
    if (!els[id] && state.segs && !state.segs[s.seg]) openSeg(s.seg);
    var e = els[id]; if (!e) return;
    toggle(id, true); drawLinks();
    e.classList.add('current');
    e.scrollIntoView({block: 'center', inline: 'center'});
  }

  function highlight(id, on) {
    var svg = document.getElementById('links'); if (!svg) return;
    svg.classList.toggle('focusing', on);
    var paths = svg.querySelectorAll('path.link');
    for (var i = 0; i < paths.length; i++) {
      var p = paths[i];
      p.classList.toggle('focus', on && (p.dataset.from === id || p.dataset.to === id));
    }
  }

  function drawLinks() {
    var svg = document.getElementById('links'); if (!svg || !grid) return;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute('width', grid.scrollWidth); svg.setAttribute('height', grid.scrollHeight);
    var NS = 'http://www.w3.org/2000/svg', g = grid.getBoundingClientRect();
    var defs = document.createElementNS(NS, 'defs'), mk = document.createElementNS(NS, 'marker');
    mk.setAttribute('id', 'arrow'); mk.setAttribute('viewBox', '0 0 10 10'); mk.setAttribute('refX', '9');
    mk.setAttribute('refY', '5'); mk.setAttribute('markerWidth', '7'); mk.setAttribute('markerHeight', '7');
    mk.setAttribute('orient', 'auto-start-reverse');
    var tip = document.createElementNS(NS, 'path'); tip.setAttribute('d', 'M0,0 L10,5 L0,10 z');
    tip.setAttribute('class', 'arrowhead'); mk.appendChild(tip); defs.appendChild(mk); svg.appendChild(defs);
    // all reads first, then all writes: reading a rect after each appended path would lay the page out again
    var rects = M.links.map(function (l) {
      var a = l.from && els[l.from], b = els[l.to];
      return a && b ? [a.getBoundingClientRect(), b.getBoundingClientRect()] : null;
    });
    var frag = document.createDocumentFragment(), arrived = {};
    M.links.forEach(function (l, i) {
      if (!rects[i]) return;
      var ra = rects[i][0], rb = rects[i][1];
      var ltr = ra.left < rb.left;
      // links into one step, from one side, arrive one under the other, each with its label by its arrow
      var side = l.to + (ltr ? '<' : '>'), k = arrived[side] = (arrived[side] || 0) + 1;
      var x1 = (ltr ? ra.right : ra.left) - g.left, y1 = ra.top + 11 - g.top;
      var x2 = (ltr ? rb.left : rb.right) - g.left, y2 = rb.top + 4 + 8 * (k - 1) - g.top;
      var dx = Math.max(10, Math.abs(x2 - x1) * 0.45) * (ltr ? 1 : -1);
      var p = document.createElementNS(NS, 'path');
      p.setAttribute('d', 'M' + x1 + ',' + y1 + ' C' + (x1 + dx) + ',' + y1 + ' ' + (x2 - dx) + ',' + y2 + ' ' + x2
        + ',' + y2);
      p.setAttribute('class', 'link'); p.setAttribute('marker-end', 'url(#arrow)');
      p.dataset.src = l.src; p.dataset.dst = l.dst; p.dataset.from = l.from; p.dataset.to = l.to;
      var t = document.createElementNS(NS, 'title');
      t.textContent = 'T' + l.src + ' \u2192 T' + l.dst + ' via ' + l.router + ', round ' + l.round
        + (l.sim !== null && l.sim !== undefined ? ', similarity ' + l.sim : '');
      p.appendChild(t); frag.appendChild(p);
      if (l.sim !== null && l.sim !== undefined) {
        var lab = document.createElementNS(NS, 'text');
        lab.setAttribute('x', x2 + (ltr ? -4 : 4)); lab.setAttribute('y', y2 - 2);
        lab.setAttribute('text-anchor', ltr ? 'end' : 'start');
        lab.setAttribute('class', 'simlabel'); lab.textContent = Number(l.sim).toFixed(2);
        frag.appendChild(lab);
      }
    });
    svg.appendChild(frag);
  }

  function render() {
    var pos = wrap ? [wrap.scrollLeft, wrap.scrollTop] : null;
    els = {}; byId = {};
    app.textContent = '';
    app.appendChild(header());
    app.appendChild(toolbar());
    app.appendChild(body());
    if (pos) { wrap.scrollLeft = pos[0]; wrap.scrollTop = pos[1]; }
    if (state.query) search(state.query);
    // links need every step laid out: drawn after the first frame, so a large run shows its columns at once
    requestAnimationFrame(function () { setTimeout(drawLinks); });
  }

  function poll() {
    var url = M.live.poll + '?after=' + encodeURIComponent(M.last_seq);
    fetch(url, {cache: 'no-store'}).then(function (r) { return r.json(); }).then(function (d) {
      var live = M.live;
      if (d.model) { M = d.model; M.live = live; render(); }
      var badge = document.getElementById('live');
      if (badge) badge.textContent = d.status === 'running' ? 'live' : 'finished (' + d.status + ')';
      if (d.status === 'running') setTimeout(poll, live.interval_ms);
    }).catch(function () {
      var badge = document.getElementById('live'); if (badge) badge.textContent = 'server gone; retrying';
      setTimeout(poll, 5000);
    });
  }

  render();
  var drawn = performance.now();
  requestAnimationFrame(function () { setTimeout(function () { window.peerstepView.shownAt = performance.now(); }); });
  window.addEventListener('resize', function () { clearTimeout(timer); timer = setTimeout(drawLinks, 100); });
  window.peerstepView = {model: function () { return M; }, search: search, nextError: nextError, render: render,
    drawLinks: drawLinks, drawnAt: drawn,
    shownAt: null};
  if (M.live && M.run.status === 'running') setTimeout(poll, M.live.interval_ms);
})();
