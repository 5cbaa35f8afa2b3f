// The live page: one EventSource per view, each bootstrapped by the stream's
// own `snapshot` event and kept current by applying JSON Merge Patches
// (RFC 7396). No framework, no build step; every text lands in the DOM as
// a text node or textContent, never parsed as HTML.
'use strict';

(() => {
  // ---------------------------------------------------------------- merge

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const has = (object, key) => isObject(object) && Object.prototype.hasOwnProperty.call(object, key);

  // RFC 7396 MergePatch(target, patch). Objects are built without a
  // prototype, so a key such as "__proto__" (a city may be called anything)
  // is an ordinary key.
  function mergePatch(target, patch) {
    if (!isObject(patch)) return patch;
    const out = Object.create(null);
    if (isObject(target)) {
      for (const key of Object.keys(target)) out[key] = target[key];
    }
    for (const key of Object.keys(patch)) {
      const value = patch[key];
      if (value === null) delete out[key];
      else out[key] = mergePatch(out[key], value);
    }
    return out;
  }

  // ------------------------------------------------------------------ dom

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === 'class') node.className = value;
      else if (name.startsWith('data-')) node.setAttribute(name, value);
      else node[name] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(node, text) {
    const value = text === undefined || text === null ? '' : String(text);
    if (node.textContent !== value) {
      node.textContent = value;
      return true;
    }
    return false;
  }

  function flash(node) {
    node.classList.remove('flash');
    void node.offsetWidth; // restart the animation
    node.classList.add('flash');
  }

  const numbers = new Intl.NumberFormat('en', { maximumFractionDigits: 2, minimumFractionDigits: 2 });
  const integers = new Intl.NumberFormat('en');

  // --------------------------------------------------------------- server

  // `tokens`: which requests the server wants a token for (from /healthz).
  const server = { epoch: null, tokens: { read: false, write: false } };

  // ---------------------------------------------------------------- token

  // A server started with --write-token (and maybe --read-token) wants a
  // bearer token. The page asks for one when it is needed (a write was
  // answered 401, or /healthz says reads need one), keeps it for this tab
  // only (sessionStorage, else memory), sends it as `Authorization` on
  // writes and as `?access_token=` on streams, because EventSource cannot
  // send headers.
  const TOKEN_KEY = 'duality.token';
  let memoryToken = '';

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
    } catch {
      return memoryToken;
    }
  }

  function storeToken(token) {
    memoryToken = token;
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch { /* storage disabled: memory only */ }
  }

  let asking = null;

  // Shows the token form; resolves with the token entered, or null if the
  // user cancels. Callers that ask while the form is open share its answer.
  function askToken(reason) {
    const form = document.getElementById('token-form');
    setText(form.querySelector('[data-role=token-reason]'), reason);
    if (asking) return asking;
    form.hidden = false;
    const input = form.elements.token;
    input.value = '';
    input.focus();
    asking = new Promise((resolve) => {
      const done = (token) => {
        form.hidden = true;
        form.onsubmit = null;
        form.querySelector('[data-role=token-cancel]').onclick = null;
        asking = null;
        resolve(token);
      };
      form.onsubmit = (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        storeToken(token);
        done(token);
      };
      form.querySelector('[data-role=token-cancel]').onclick = () => done(null);
    });
    return asking;
  }

  // True if the server refuses this page's token (or its lack of one) on
  // `streamPath`; only the answer's status is read.
  async function readRefused(streamPath) {
    const abort = new AbortController();
    const query = new URLSearchParams({ access_token: storedToken() });
    try {
      const response = await fetch(`${streamPath}?${query}`, { cache: 'no-store', signal: abort.signal });
      return response.status === 401;
    } finally {
      abort.abort();
    }
  }

  async function health() {
    const response = await fetch('/healthz', { cache: 'no-store' });
    if (!response.ok) throw new Error(`GET /healthz answered ${response.status}`);
    const body = await response.json();
    server.epoch = typeof body.epoch === 'string' ? body.epoch : null;
    if (isObject(body.tokens)) {
      server.tokens = { read: body.tokens.read === true, write: body.tokens.write === true };
    }
    const epoch = document.getElementById('epoch');
    setText(epoch, server.epoch ? server.epoch.slice(0, 8) : '?');
    epoch.title = server.epoch || '';
    return body;
  }

  // ----------------------------------------------------------------- feed

  // Follows one view: `<stream>?snapshot=true` gives the whole view as a
  // `snapshot` event, then unnamed change events (id = revision, data = a
  // merge patch). The browser reconnects by itself with Last-Event-ID after
  // a dropped connection; when the stream is gone for good (a `reset` event,
  // or a 410 for another epoch or a trimmed position, which EventSource
  // reports as an error with readyState CLOSED) the feed starts over from a
  // fresh snapshot.
  class Feed {
    constructor(panel, streamPath, render) {
      this.panel = panel;
      this.streamPath = streamPath;
      this.render = render;
      this.model = null;
      this.revision = null;
      this.source = null;
      this.failures = 0;
      this.timer = null;
      this.state = 'connecting';
      this.upstreamLost = null;
      this.revisionNode = panel.querySelector('[data-role=revision]');
      this.connNode = panel.querySelector('[data-role=conn]');
    }

    setState(state) {
      this.state = state;
      // A live stream of a composed view whose upstream is lost (a `stale`
      // event, until `fresh`) is shown stale too: its content is old.
      const shown = state === 'live' && this.upstreamLost ? 'stale' : state;
      this.panel.dataset.state = shown;
      setText(this.connNode, shown);
      this.connNode.title = state === 'live' && this.upstreamLost
        ? `an upstream service is lost (${this.upstreamLost}); showing the last state it gave`
        : {
          connecting: 'loading the snapshot',
          live: 'following the change stream',
          stale: 'the stream is down; showing the last state received',
        }[state];
    }

    show(changed) {
      this.panel.dataset.revision = String(this.revision);
      setText(this.revisionNode, this.revision);
      this.render(this.model, changed);
    }

    open() {
      this.close();
      const query = new URLSearchParams({ snapshot: 'true' });
      if (server.epoch) query.set('epoch', server.epoch);
      if (server.tokens.read && storedToken()) query.set('access_token', storedToken());
      const source = new EventSource(`${this.streamPath}?${query}`);
      this.source = source;
      this.upstreamLost = null; // the server says again if it still is
      this.setState(this.model === null ? 'connecting' : 'stale');

      source.addEventListener('snapshot', (event) => {
        if (source !== this.source) return;
        this.model = mergePatch(null, JSON.parse(event.data));
        this.revision = Number(event.lastEventId);
        this.failures = 0;
        this.setState('live');
        this.show(null);
      });
      source.addEventListener('message', (event) => {
        if (source !== this.source || this.model === null) return;
        const revision = Number(event.lastEventId);
        if (revision <= this.revision) return; // already applied
        if (revision !== this.revision + 1) {
          this.restart(); // a gap: never guess, start over
          return;
        }
        const patch = JSON.parse(event.data);
        this.model = mergePatch(this.model, patch);
        this.revision = revision;
        this.show(patch);
      });
      source.addEventListener('reset', () => {
        if (source === this.source) this.restart();
      });
      source.addEventListener('stale', (event) => {
        if (source !== this.source) return;
        let lost = 'upstream';
        try {
          const data = JSON.parse(event.data);
          if (Array.isArray(data.upstreams)) lost = data.upstreams.join(', ');
        } catch { /* keep the generic word */ }
        this.upstreamLost = lost;
        this.setState(this.state);
      });
      source.addEventListener('fresh', () => {
        if (source !== this.source) return;
        this.upstreamLost = null;
        this.setState(this.state);
      });
      source.addEventListener('open', () => {
        // A reconnection with Last-Event-ID continues where we were.
        if (source === this.source && this.model !== null) this.setState('live');
      });
      source.addEventListener('error', () => {
        if (source !== this.source) return;
        if (source.readyState === EventSource.CLOSED) this.restart();
        else this.setState(this.model === null ? 'connecting' : 'stale');
      });
    }

    close() {
      if (this.source) this.source.close();
      this.source = null;
      clearTimeout(this.timer);
    }

    // Starts over from a snapshot, after a growing pause, with the server's
    // current epoch (a restarted in-memory server has a new history).
    restart() {
      this.close();
      this.setState(this.model === null ? 'connecting' : 'stale');
      const delay = Math.min(250 * 2 ** this.failures, 10000);
      this.failures += 1;
      this.timer = setTimeout(async () => {
        try {
          await health();
          if (server.tokens.read && (await readRefused(this.streamPath))) {
            await askToken(storedToken()
              ? 'The server refused that token. Enter a read or write token to see the views:'
              : 'This server needs a token to show its views. Enter a read or write token:');
          }
          this.open();
        } catch {
          this.restart();
        }
      }, delay);
    }
  }

  // -------------------------------------------------------------- persons

  const personRows = new Map();

  function renderPersons(panel, model, changed) {
    const tbody = panel.querySelector('tbody');
    const ids = Object.keys(model).sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
    for (const [id, row] of personRows) {
      if (!has(model, id)) {
        row.remove();
        personRows.delete(id);
      }
    }
    for (const id of ids) {
      const person = isObject(model[id]) ? model[id] : Object.create(null);
      let row = personRows.get(id);
      if (!row) {
        row = h('tr', { 'data-id': id },
          h('td', { class: 'num', 'data-field': 'id' }, id),
          h('td', { 'data-field': 'name' }),
          h('td', { 'data-field': 'city' }),
          h('td', { class: 'actions' },
            h('button', { type: 'button', class: 'link', 'data-action': 'edit' }, 'edit'),
            h('button', { type: 'button', class: 'link danger', 'data-action': 'delete' }, 'delete')));
        personRows.set(id, row);
      }
      const [, nameCell, cityCell] = row.cells;
      const hasCity = typeof person.city === 'string';
      let touched = setText(nameCell, person.name);
      touched = setText(cityCell, hasCity ? person.city : '—') || touched;
      cityCell.classList.toggle('muted', !hasCity);
      tbody.append(row); // keeps the rows in id order
      if (changed && (touched || has(changed, id))) flash(row);
    }
    panel.querySelector('[data-role=empty]').hidden = ids.length > 0;
  }

  // ------------------------------------------------------------ locations

  const locationRows = new Map();

  function renderLocations(panel, model, changed) {
    const tbody = panel.querySelector('tbody');
    const cities = Object.keys(model).sort((a, b) => a.localeCompare(b));
    const totals = cities.map((c) => Number(isObject(model[c]) ? model[c].total : 0) || 0);
    const max = Math.max(1, ...totals);
    for (const [city, row] of locationRows) {
      if (!has(model, city)) {
        row.remove();
        locationRows.delete(city);
      }
    }
    cities.forEach((city, i) => {
      let row = locationRows.get(city);
      if (!row) {
        row = h('tr', { 'data-city': city },
          h('td', { 'data-field': 'city' }, city),
          h('td', { class: 'num', 'data-field': 'total' }),
          h('td', { class: 'barcol' }, h('span', { class: 'track' }, h('span', { class: 'fill' }))));
        locationRows.set(city, row);
      }
      setText(row.cells[1], totals[i]);
      row.querySelector('.fill').style.width = `${(100 * totals[i]) / max}%`;
      tbody.append(row);
      if (changed && has(changed, city)) flash(row);
    });
    panel.querySelector('[data-role=empty]').hidden = cities.length > 0;
  }

  // ------------------------------------------------------------ dashboard

  function list(model, key) {
    return Array.isArray(model[key]) ? model[key].filter(isObject) : [];
  }

  function fillList(node, items, changed) {
    node.replaceChildren(...items);
    if (!items.length) node.append(h('li', { class: 'empty' }, 'nothing yet'));
    if (changed) flash(node);
  }

  function renderDashboard(panel, model, changed) {
    const touched = (key) => changed && has(changed, key);
    const count = document.getElementById('customer-count');
    setText(count, model.customerCount === undefined ? '–' : integers.format(Number(model.customerCount)));
    if (touched('customerCount')) flash(count);

    fillList(document.getElementById('top-customers'),
      list(model, 'topCustomers').map((c) => h('li', {},
        h('span', { class: 'name' }, c.customerName),
        h('span', { class: 'pill', title: 'scoring, from 0 to 10' }, `score ${c.scoring}/10`))),
      touched('topCustomers'));

    fillList(document.getElementById('most-incidents'),
      list(model, 'customersWithMostIncidents').map((c) => h('li', {},
        h('span', { class: 'name' }, c.customerName),
        h('span', { class: 'pill' }, `${c.numberOfIncidents} incident${c.numberOfIncidents === 1 ? '' : 's'}`))),
      touched('customersWithMostIncidents'));

    const volumes = list(model, 'customersWithHighestIncidentVolume');
    const max = Math.max(1e-9, ...volumes.map((c) => Number(c.incidentVolume) || 0));
    fillList(document.getElementById('incident-volume'),
      volumes.map((c) => {
        const fill = h('span', { class: 'fill' });
        fill.style.width = `${(100 * (Number(c.incidentVolume) || 0)) / max}%`;
        return h('li', {},
          h('span', { class: 'name' }, c.customerName),
          h('span', { class: 'track' }, fill),
          h('span', { class: 'value' }, numbers.format(Number(c.incidentVolume) || 0)));
      }),
      touched('customersWithHighestIncidentVolume'));
  }

  // ----------------------------------------------------------------- form

  function personForm(panel) {
    const form = panel.querySelector('#person-form');
    const status = form.querySelector('[data-role=form-status]');
    const submit = form.querySelector('[data-role=submit]');
    const cancel = form.querySelector('[data-role=cancel]');

    const say = (text, bad) => {
      setText(status, text);
      status.classList.toggle('bad', Boolean(bad));
    };
    const reset = () => {
      form.reset();
      form.elements.id.value = '';
      setText(submit, 'Add person');
      cancel.hidden = true;
    };

    // Sends a write with the stored token; on a 401 asks for a token and
    // tries again, until the user cancels.
    async function send(method, path, body) {
      let response;
      for (;;) {
        const headers = body === undefined ? {} : { 'Content-Type': 'application/json' };
        const token = storedToken();
        if (token) headers.Authorization = `Bearer ${token}`;
        response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        if (response.status !== 401) break;
        const given = await askToken(token
          ? 'The server refused that token for writes. Enter a write token:'
          : 'Writes on this server need a token. Enter a write token:');
        if (!given) break;
      }
      const revision = response.headers.get('X-Revision');
      if (response.ok) return revision;
      let message = `${method} ${path} answered ${response.status}`;
      try {
        const error = await response.json();
        if (error && typeof error.error === 'string') message = error.error;
      } catch { /* not JSON */ }
      throw new Error(message);
    }

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const id = form.elements.id.value;
      const name = form.elements.name.value.trim();
      const city = form.elements.city.value.trim();
      if (!name) {
        say('A person needs a name.', true);
        return;
      }
      try {
        if (id) {
          const revision = await send('PATCH', `/persons/${encodeURIComponent(id)}`, { name, city: city || null });
          say(`Saved person ${id} (persons revision ${revision}).`);
        } else {
          const revision = await send('POST', '/persons', city ? { name, city } : { name });
          say(`Added ${name} (persons revision ${revision}).`);
        }
        reset();
      } catch (error) {
        say(error.message, true);
      }
    });

    cancel.addEventListener('click', () => {
      reset();
      say('');
    });

    panel.querySelector('tbody').addEventListener('click', async (event) => {
      const button = event.target.closest('button[data-action]');
      if (!button) return;
      const row = button.closest('tr');
      const id = row.dataset.id;
      if (button.dataset.action === 'edit') {
        form.elements.id.value = id;
        form.elements.name.value = row.cells[1].textContent;
        form.elements.city.value = row.cells[2].classList.contains('muted') ? '' : row.cells[2].textContent;
        setText(submit, `Save person ${id}`);
        cancel.hidden = false;
        form.elements.name.focus();
        say('');
      } else if (button.dataset.action === 'delete') {
        // Two clicks, no modal dialog: the first one arms the button.
        if (button.dataset.armed !== 'true') {
          button.dataset.armed = 'true';
          setText(button, 'sure?');
          setTimeout(() => {
            button.dataset.armed = 'false';
            setText(button, 'delete');
          }, 3000);
          return;
        }
        try {
          const revision = await send('DELETE', `/persons/${encodeURIComponent(id)}`);
          say(`Deleted person ${id} (persons revision ${revision}).`);
          if (form.elements.id.value === id) reset();
        } catch (error) {
          say(error.message, true);
        }
      }
    });
  }

  // ---------------------------------------------------------- collections

  // One panel per `--collection`: each document by key, as compact JSON.
  function collectionPanel(name) {
    const tbody = h('tbody', {});
    const panel = h('article', { class: 'panel', 'data-collection': name, 'data-state': 'connecting' },
      h('header', { class: 'panel-head' },
        h('h2', {}, `Collection ${name}`),
        h('span', { class: 'meta' },
          h('span', { class: 'rev' }, 'rev ', h('b', { 'data-role': 'revision' }, '–')),
          h('span', { class: 'conn', 'data-role': 'conn' }, 'connecting'))),
      h('div', { class: 'scroll' },
        h('table', { class: 'grid' },
          h('thead', {}, h('tr', {}, h('th', {}, 'key'), h('th', {}, 'document'))),
          tbody),
        h('p', { class: 'empty', 'data-role': 'empty', hidden: true },
          'No documents yet: PUT one at ', h('code', {}, `/collections/${name}/items/{key}`), '.')));
    document.querySelector('main').append(panel);
    return panel;
  }

  function renderCollection(rows) {
    return (panel, model, changed) => {
      const tbody = panel.querySelector('tbody');
      const keys = Object.keys(model).sort();
      for (const [key, row] of rows) {
        if (!has(model, key)) {
          row.remove();
          rows.delete(key);
        }
      }
      for (const key of keys) {
        let row = rows.get(key);
        if (!row) {
          row = h('tr', { 'data-key': key }, h('td', {}, key), h('td', { class: 'json' }));
          rows.set(key, row);
        }
        const touched = setText(row.cells[1], JSON.stringify(model[key]));
        tbody.append(row);
        if (changed && (touched || has(changed, key))) flash(row);
      }
      panel.querySelector('[data-role=empty]').hidden = keys.length > 0;
    };
  }

  // ----------------------------------------------------------------- boot

  const VIEWS = [
    { name: 'persons', stream: '/person-events', render: renderPersons },
    { name: 'locations', stream: '/location-events', render: renderLocations },
    { name: 'dashboard', stream: '/aggregates/dashboard-events', render: renderDashboard },
  ];

  async function boot() {
    const notice = document.getElementById('notice');
    let body;
    try {
      body = await health();
    } catch (error) {
      notice.hidden = false;
      setText(notice, `Cannot reach the server (${error.message}); retrying…`);
      setTimeout(boot, 2000);
      return;
    }
    const served = isObject(body.revisions) ? Object.keys(body.revisions) : [];
    const shown = VIEWS.filter((v) => served.includes(v.name));
    const collections = Array.isArray(body.collections)
      ? body.collections.filter((name) => typeof name === 'string') : [];
    notice.hidden = shown.length + collections.length > 0;
    if (!shown.length && !collections.length) {
      setText(notice, `This server serves none of the views this page shows (it serves: ${served.join(', ') || 'nothing'}).`);
    }
    if (server.tokens.read && !storedToken()) {
      await askToken('This server needs a token to show its views. Enter a read or write token:');
    }
    document.getElementById('persons-row').hidden = !served.includes('persons') && !served.includes('locations');
    for (const view of shown) {
      const panel = document.querySelector(`[data-view="${view.name}"]`);
      panel.hidden = false;
      if (view.name === 'persons') personForm(panel);
      new Feed(panel, view.stream, (model, changed) => view.render(panel, model, changed)).open();
    }
    for (const name of collections) {
      const panel = collectionPanel(name);
      const render = renderCollection(new Map());
      const stream = `/collections/${encodeURIComponent(name)}/events`;
      new Feed(panel, stream, (model, changed) => render(panel, model, changed)).open();
    }
  }

  boot();
})();
