'use strict';
// The ring page (SPEC §14): polls the admin API and draws every service's
// ring. Text only ever goes in through textContent and attributes, never
// as markup, so nothing the API returns can run as script.
(function () {
  const REFRESH_MS = 2000;
  // Okabe-Ito: told apart with the common kinds of colour blindness; the
  // hatching and the instance's number tell them apart without colour.
  const COLOURS = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#56b4e9', '#d55e00', '#6a3d9a', '#b15928'];
  const HATCHES = ['', 'M0 0V6', 'M0 3H6', 'M1.5 1.5h0M4.5 4.5h0', 'M0 0V6M0 3H6', 'M0 0L6 6'];
  const OUTER = 100, INNER = 68;
  const template = document.getElementById('ring-template');
  // The SVG namespace, taken from the parsed template rather than spelled
  // out, so that the page names no URL at all.
  const SVG_NS = template.content.firstElementChild.namespaceURI;
  const statusLine = document.getElementById('status');
  const problemLine = document.getElementById('problem');
  const servicesBox = document.getElementById('services');
  const form = document.getElementById('lookup-form');
  const serviceSelect = document.getElementById('lookup-service');
  const keyInput = document.getElementById('lookup-key');
  const answerBox = document.getElementById('lookup-answer');

  // SPEC §14: the token may come once in ?token=; it is kept in this page
  // only, and taken out of the address bar and the history.
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  if (token !== null) history.replaceState(null, '', location.pathname);

  let lookup = null; // {service, view}: the answer shown, drawn on the ring
  let lastServices = [];
  let lastExtras = [];

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    for (const child of children === undefined ? [] : [].concat(children)) {
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function api(path) {
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    const response = await fetch(path, { headers, cache: 'no-store' });
    const text = await response.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) { /* not JSON: shown as text */ }
    if (!response.ok) {
      throw new Error(response.status + ': ' + ((body && body.error) || text.trim()));
    }
    return body;
  }

  // §11's data, when the service has it: null otherwise.
  function optional(path) {
    return api(path).catch(() => null);
  }

  const nameOf = (instance) => instance.host + ':' + instance.port;
  // A 32-hex-digit ring position as a fraction of the circle (the top 48
  // bits are far finer than a pixel).
  const fraction = (hex) => parseInt(hex.slice(0, 12), 16) / 2 ** 48;
  const point = (f, r) => {
    const a = 2 * Math.PI * f - Math.PI / 2;
    return (r * Math.cos(a)).toFixed(2) + ' ' + (r * Math.sin(a)).toFixed(2);
  };
  const percent = (x) => (x * 100).toFixed(x < 0.1 ? 2 : 1) + '%';
  const clock = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleTimeString() : 'never');
  const ago = (seconds) => (seconds ? clock(seconds) + ' (' + Math.max(0, Math.round(Date.now() / 1000 - seconds)) + ' s ago)' : 'never');

  // The band between radii r0 and r1 from f0 to f1 (f1 > f0), as a path.
  function band(f0, f1, r0, r1) {
    if (f1 - f0 >= 1) return band(f0, f0 + 0.5, r0, r1) + band(f0 + 0.5, f0 + 1, r0, r1);
    const large = f1 - f0 > 0.5 ? 1 : 0;
    return 'M' + point(f0, r1) + 'A' + r1 + ' ' + r1 + ' 0 ' + large + ' 1 ' + point(f1, r1) +
      'L' + point(f1, r0) + 'A' + r0 + ' ' + r0 + ' 0 ' + large + ' 0 ' + point(f0, r0) + 'Z';
  }

  function state(instance) {
    const states = [];
    if (instance.health && instance.health.ejected) {
      states.push(instance.health.reason ? 'ejected (' + instance.health.reason + ')' : 'ejected');
    }
    if (instance.drained) states.push('drained');
    const word = instance.health && instance.health.ejected ? 'ejected' : instance.drained ? 'drained' : 'healthy';
    return { word, text: states.join(', ') || 'healthy' };
  }

  function patternId(s, i) { return 'p' + s + '-' + i; }

  function pattern(s, i) {
    const colour = COLOURS[i % COLOURS.length];
    const node = svg('pattern', {
      id: patternId(s, i), width: 6, height: 6, patternUnits: 'userSpaceOnUse',
      patternTransform: 'rotate(' + (Math.floor(i / HATCHES.length) * 30 + 45) + ')',
    });
    node.append(svg('rect', { width: 6, height: 6, fill: colour }));
    const hatch = HATCHES[i % HATCHES.length];
    if (hatch) {
      node.append(svg('path', { d: hatch, stroke: '#fff', 'stroke-width': 1.6, 'stroke-linecap': 'round' }));
    }
    return node;
  }

  function swatch(s, i) {
    const box = svg('svg', { class: 'swatch', viewBox: '0 0 12 12', 'aria-hidden': 'true' });
    box.append(svg('rect', { width: 12, height: 12, fill: 'url(#' + patternId(s, i) + ')', stroke: '#1b1f24', 'stroke-width': 0.5 }));
    return box;
  }

  // Every token as [fraction, hex, instance index], in ring order.
  function points(service) {
    const all = [];
    service.instances.forEach((instance, i) => {
      for (const t of instance.tokens) all.push([fraction(t), t, i]);
    });
    return all.sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  }

  // The ranges as [from, to, instance index] with to > from (fractions),
  // each run of ranges with the same primary merged into one: far fewer
  // paths on a ring of many tokens.
  function runs(all) {
    const n = all.length;
    if (!n) return [];
    const start = all.findIndex((p, k) => p[2] !== all[(k + n - 1) % n][2]);
    if (start < 0) return [[0, 1, all[0][2]]];
    const out = [];
    for (let step = 0; step < n;) {
      const k = (start + step) % n;
      const owner = all[k][2];
      let len = 1;
      while (step + len < n && all[(k + len) % n][2] === owner) len += 1;
      const from = all[(k + n - 1) % n][0];
      let to = all[(k + len - 1) % n][0];
      if (to < from) to += 1;
      out.push([from, to, owner]);
      step += len;
    }
    return out;
  }

  function drawRing(service, s, extra) {
    const root = template.content.firstElementChild.cloneNode(true);
    const [defs, loadG, arcs, ticks, hotG, marks, centre] =
      ['defs', '.load', '.arcs', '.ticks', '.hot', '.marks', '.centre'].map((q) => root.querySelector(q));
    const all = points(service);
    const tokens = all.length;
    root.querySelector('title').textContent = 'The ring of ' + service.service + ': ' +
      service.instances.length + ' instances, ' + tokens + ' tokens; each arc is the range its instance is primary for.';
    service.instances.forEach((instance, i) => defs.append(pattern(s, i)));
    for (const [from, to, owner] of runs(all)) {
      const instance = service.instances[owner];
      const st = state(instance);
      const path = svg('path', { d: band(from, to, INNER, OUTER), fill: 'url(#' + patternId(s, owner) + ')' });
      if (st.word !== 'healthy') path.setAttribute('class', 'inactive');
      path.append(svg('title', {}, nameOf(instance) + ' (' + st.text + ')'));
      arcs.append(path);
      // The instance's number on its arc, where there is room for it.
      if (to - from >= 0.03) {
        const [x, y] = point((from + to) / 2, (OUTER + INNER) / 2).split(' ');
        arcs.append(svg('text', { x, y: Number(y) + 3, 'text-anchor': 'middle', 'aria-hidden': 'true' }, String(owner + 1)));
      }
    }
    ticks.setAttribute('d', all.map(([f]) => 'M' + point(f, OUTER) + 'L' + point(f, OUTER + 5)).join(''));
    const [hot, load] = extra;
    if (load && load.fingerprint === service.fingerprint && load.requests > 0) {
      // Not Math.max(...): a ring may have more ranges than a call takes
      // arguments.
      const most = load.ranges.reduce((m, r) => Math.max(m, r.requests), 0);
      for (const range of load.ranges) {
        if (!range.requests) continue;
        let f0 = fraction(range.after), f1 = fraction(range.through);
        if (f1 <= f0) f1 += 1;
        const path = svg('path', { d: band(f0, f1, OUTER + 7, OUTER + 17), fill: '#1b1f24', 'fill-opacity': (0.15 + 0.85 * range.requests / most).toFixed(2) });
        path.append(svg('title', {}, range.owner + ': ' + range.requests + ' requests'));
        loadG.append(path);
      }
    }
    if (hot) {
      for (const key of hot.keys.slice(0, 10)) {
        const f = fraction(key.hash);
        const mark = svg('path', { d: 'M' + point(f, OUTER + 18) + 'L' + point(f - 0.012, OUTER + 29) + 'L' + point(f + 0.012, OUTER + 29) + 'Z', fill: '#d55e00', stroke: '#1b1f24', 'stroke-width': 0.5 });
        mark.append(svg('title', {}, 'hot key ' + (key.key || key.hash) + ': ' + key.rate.toFixed(1) + ' requests/s'));
        hotG.append(mark);
      }
    }
    centre.textContent = service.instances.length + ' instances';
    if (lookup && lookup.service === service.service) markLookup(marks, service, all);
    return root;
  }

  // The key's position, and each instance of its preference list where the
  // clockwise walk from the key first meets it, numbered in list order.
  function markLookup(marks, service, all) {
    const view = lookup.view;
    const f = fraction(view.hash);
    marks.append(svg('path', { d: 'M0 0L' + point(f, OUTER + 6), stroke: '#1b1f24', 'stroke-width': 1.5, 'stroke-dasharray': '3 2' }));
    const dot = svg('circle', { r: 4, fill: '#fff', stroke: '#1b1f24', 'stroke-width': 2 });
    const [x, y] = point(f, OUTER + 6).split(' ');
    dot.setAttribute('cx', x);
    dot.setAttribute('cy', y);
    dot.append(svg('title', {}, 'key ' + view.key + ' at ' + view.hash));
    marks.append(dot);
    const start = all.findIndex((p) => p[1] >= view.hash);
    view.instances.forEach((member, rank) => {
      const index = service.instances.findIndex((i) => nameOf(i) === nameOf(member));
      for (let step = 0; step < all.length; step += 1) {
        const p = all[((start < 0 ? 0 : start) + step) % all.length];
        if (p[2] !== index) continue;
        const [cx, cy] = point(p[0], (OUTER + INNER) / 2).split(' ');
        marks.append(svg('circle', { cx, cy, r: 7, fill: '#1b1f24', stroke: '#fff', 'stroke-width': 1.5 }));
        marks.append(svg('text', { x: cx, y: Number(cy) + 3, 'text-anchor': 'middle' }, String(rank + 1)));
        break;
      }
    });
  }

  function instanceTable(service, s, load) {
    const srv = service.settings.balance === 'srv';
    const listed = lookup && lookup.service === service.service ? lookup.view.instances.map(nameOf) : [];
    const perInstance = new Map(((load && load.fingerprint === service.fingerprint && load.instances) || []).map((i) => [i.instance, i.requests]));
    const head = ['#', 'instance', 'state'].concat(srv ? ['priority', 'weight'] : ['share', 'tokens']);
    if (load) head.push('requests');
    if (listed.length) head.push('lookup');
    head.push('address');
    const rows = service.instances.map((instance, i) => {
      const name = nameOf(instance);
      const st = state(instance);
      const rank = listed.indexOf(name);
      const cells = [
        el('td', {}, [swatch(s, i), String(i + 1)]),
        el('td', { class: 'mono' }, name),
        el('td', { class: 'state state-' + st.word }, st.text),
      ].concat(srv
        ? [el('td', { class: 'num' }, instance.priority), el('td', { class: 'num' }, instance.weight)]
        : [el('td', { class: 'num' }, percent(instance.share)), el('td', { class: 'num' }, instance.tokens.length)]);
      if (load) cells.push(el('td', { class: 'num' }, perInstance.get(name) || 0));
      if (listed.length) cells.push(el('td', {}, rank < 0 ? '' : rank === 0 ? '1 primary' : String(rank + 1)));
      cells.push(el('td', { class: 'mono' }, instance.addr));
      return el('tr', { 'data-instance': name, 'data-state': st.word, class: rank < 0 ? '' : 'in-list' }, cells);
    });
    const table = el('table', { 'aria-label': 'instances of ' + service.service }, [
      el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rows),
    ]);
    return el('div', {}, [
      el('div', { class: 'scroll' }, table),
      el('p', { class: 'legend' }, 'The number and hatching of each instance match its arcs on the ring.'),
    ]);
  }

  function settings(service) {
    const set = service.settings;
    const pairs = [
      ['source', service.source],
      ['balance', set.balance],
      ['replicas', set.slaves + ' (redundancy ' + set.redundancy + ', from ' + set.replication_source + ')'],
      ['preference list', set.list_len + ' instances'],
      ['fingerprint', service.fingerprint || 'none'],
      ['discovered', ago(service.discovered_at)],
      ['last refresh', ago(service.last_refresh)],
    ];
    const list = el('dl', {});
    for (const [name, value] of pairs) list.append(el('dt', {}, name), el('dd', { class: name === 'fingerprint' ? 'mono' : '' }, value));
    if (service.last_error) {
      list.append(el('dt', {}, 'last error'), el('dd', { class: 'error' }, 'Error at ' + clock(service.last_error_at) + ': ' + service.last_error));
    }
    return list;
  }

  function hotTable(hot) {
    if (!hot || !hot.keys.length) return [];
    const rows = hot.keys.slice(0, 10).map((key) => el('tr', {}, [
      el('td', { class: 'mono' }, key.key || key.hash.slice(0, 12) + '\u2026'),
      el('td', { class: 'num' }, key.rate.toFixed(1)),
      el('td', { class: 'num' }, percent(key.share)),
      el('td', { class: 'mono' }, key.instances.join(', ')),
    ]));
    return [
      el('h3', {}, 'Hot keys (last ' + Math.round(hot.window_s) + ' s)'),
      el('div', { class: 'scroll' }, el('table', {}, [
        el('thead', {}, el('tr', {}, ['key', 'requests/s', 'share', 'preference list'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, rows),
      ])),
    ];
  }

  function render(services, extras) {
    lastServices = services;
    lastExtras = extras;
    const sections = services.map((service, s) => {
      const ring = service.settings.balance === 'ring';
      const figure = el('figure', { class: 'figure' });
      if (ring && service.instances.length) {
        figure.append(drawRing(service, s, extras[s]));
        figure.append(el('figcaption', { class: 'legend' },
          'Arcs: the ranges each instance is primary for, numbered as in the table; ticks: tokens' +
          (extras[s][1] && extras[s][1].requests > 0 ? '; grey band: requests per range' : '') +
          (extras[s][0] && extras[s][0].keys.length ? '; triangles: hot keys' : '') +
          (lookup && lookup.service === service.service ? '; dashed line: the key looked up, black discs: its preference list in order' : '') + '.'));
      } else {
        figure.append(el('p', { class: 'note' }, ring ? 'No ring yet.' : 'balance = "srv": no ring, instances by SRV priority and weight.'));
      }
      return el('section', { class: 'service', 'data-service': service.service, 'aria-label': 'service ' + service.service }, [
        el('h2', {}, 'Service ' + service.service),
        figure,
        el('div', { class: 'details' }, [
          instanceTable(service, s, extras[s][1]),
          el('h3', {}, 'Settings'),
          settings(service),
        ].concat(hotTable(extras[s][0]))),
      ]);
    });
    servicesBox.replaceChildren(...sections);
    const chosen = serviceSelect.value;
    const names = services.filter((s) => s.settings.balance === 'ring').map((s) => s.service);
    if (names.join('\n') !== [...serviceSelect.options].map((o) => o.value).join('\n')) {
      serviceSelect.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
      if (names.includes(chosen)) serviceSelect.value = chosen;
    }
  }

  // The problem line is an alert: written only when what it says changes,
  // so that a screen reader hears a failure once, not every refresh.
  function setProblem(text) {
    if (problemLine.textContent !== text) problemLine.textContent = text;
  }

  async function refresh() {
    try {
      const ring = await api('/ring');
      const extras = await Promise.all(ring.services.map((service) => {
        const q = '?service=' + encodeURIComponent(service.service);
        return service.settings.balance === 'ring' && service.fingerprint
          ? Promise.all([optional('/keys/hot' + q), optional('/ring/load' + q)])
          : [null, null];
      }));
      render(ring.services, extras);
      statusLine.textContent = 'Updated ' + new Date().toLocaleTimeString() + ', every ' + REFRESH_MS / 1000 + ' s.';
      setProblem('');
    } catch (error) {
      setProblem('Error: the page cannot refresh (' + error.message + '); it shows the last answer and tries again.');
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const service = serviceSelect.value;
    const key = keyInput.value;
    try {
      const view = await api('/ring/lookup?service=' + encodeURIComponent(service) + '&key=' + encodeURIComponent(key));
      lookup = { service, view };
      const names = view.instances.map(nameOf);
      answerBox.replaceChildren(
        el('p', {}, ['Key ', el('code', {}, view.key), ' of ', service, ' hashes to ', el('code', {}, view.hash),
          ' (' + percent(fraction(view.hash)) + ' round the ring). Its preference list:']),
        el('ol', { id: 'lookup-result', 'data-lookup-result': names.join(',') },
          names.map((name, rank) => el('li', { class: 'mono' }, name + (rank === 0 ? ' (primary)' : '')))),
      );
    } catch (error) {
      lookup = null;
      answerBox.replaceChildren(el('p', { class: 'error', role: 'alert' }, 'Error: ' + error.message));
    }
    render(lastServices, lastExtras);
  });

  refresh();
})();
