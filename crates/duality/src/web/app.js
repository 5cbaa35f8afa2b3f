// The live page: a panel for every view the server serves (listed by
// /healthz), all following their views over one EventSource (GET
// /streams, one subscription per view), each bootstrapped by its
// subscription's `snapshot` event and kept current by applying JSON Merge
// Patches (RFC 7396). No framework, no build step; every text lands in the
// DOM as a text node or textContent, never parsed as HTML.
//
// The page knows no view by name. A view's panel is a table of its
// documents by key, unless its service gives a richer one: the server
// names the service's panel script in the page (after this one, with the
// views it draws in `data-views`), and the script registers its panel
// while it runs, before the page draws any:
//
//   duality.panel({
//     title: 'Persons',            // the heading (default: the view's name)
//     note: 'by id',               // a smaller text after it (optional)
//     span: 6,                     // tenths of a wide window it takes (default 5)
//     mount(panel, view) {         // view: {name, snapshot, stream}
//       // build the panel's content (under its header) with duality.h …
//       return (model, changed) => { /* the whole view; the patch, or null */ };
//     },
//   });
//
// `duality` also lends the panels the page's helpers: `h`, `setText`,
// `flash`, `has`, `isObject`, and `send(method, path, body)`, a write with
// the page's token that asks the user for one when the server wants it.
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
  // the stream `url` (which carries the token, if the page has one); only
  // the answer's status is read.
  async function readRefused(url) {
    const abort = new AbortController();
    try {
      const response = await fetch(url, { cache: 'no-store', signal: abort.signal });
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

  // A browser opens at most six connections to one host, so the page
  // follows every panel's view over ONE connection: GET /streams with a
  // subscription per view (`s=<id>:<view name>`, docs/PROTOCOL.md, "Many
  // views on one connection"). Each event names its subscription (`sub`):
  // `snapshot` gives a panel the whole view, `change` a merge patch (with
  // its revision), `catch-up` one merge patch over many revisions (a panel
  // whose position is older than the events the server keeps, after the
  // laptop slept: docs/PROTOCOL.md, "Catch-up"), `reset` says that panel
  // must start over. Every event's
  // id lists every subscription's position, so the browser, reconnecting
  // by itself after a dropped connection, resumes each panel where it was
  // (Last-Event-ID). When the connection is gone for good (a 410 for
  // another epoch, which EventSource reports as an error with readyState
  // CLOSED), every panel starts over from a fresh snapshot; when one panel
  // is reset or sees a gap, the page reconnects with that panel asking for
  // a snapshot and the others carrying their revisions.
  const MAX_SUBSCRIPTIONS = 64; // per connection, as the server allows

  // One panel's copy of its view.
  class Feed {
    constructor(id, panel, view, render) {
      this.id = id;
      this.panel = panel;
      this.view = view;
      this.render = render;
      this.model = null;
      this.revision = null;
      // True until a snapshot arrives on the current connection's terms:
      // the next connection asks for one.
      this.needsSnapshot = true;
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

    // The connection is (re)connecting: live panels show their last state.
    waiting() {
      this.setState(this.model === null ? 'connecting' : 'stale');
    }

    show(changed) {
      this.panel.dataset.revision = String(this.revision);
      setText(this.revisionNode, this.revision);
      this.render(this.model, changed);
    }

    snapshot(revision, view) {
      this.model = mergePatch(null, view);
      this.revision = revision;
      this.needsSnapshot = false;
      this.setState('live');
      this.show(null);
    }

    // Applies a change; false on a gap (never guess: start over).
    change(revision, patch) {
      if (this.model === null || this.needsSnapshot) return true;
      if (revision <= this.revision) return true; // already applied
      if (revision !== this.revision + 1) return false;
      this.model = mergePatch(this.model, patch);
      this.revision = revision;
      this.show(patch);
      return true;
    }

    // Applies a catch-up: one patch from the copy's revision to `revision`,
    // however many revisions that skips.
    catchUp(revision, patch) {
      if (this.model === null || this.needsSnapshot) return;
      if (revision <= this.revision) return;
      this.model = mergePatch(this.model, patch);
      this.revision = revision;
      this.show(patch);
    }

    stale(data) {
      let lost = 'upstream';
      if (Array.isArray(data.upstreams)) lost = data.upstreams.join(', ');
      this.upstreamLost = lost;
      this.setState(this.state);
    }

    fresh() {
      this.upstreamLost = null;
      this.setState(this.state);
    }
  }

  // One connection carrying the feeds of up to MAX_SUBSCRIPTIONS panels.
  class Connection {
    constructor(feeds) {
      this.feeds = new Map(feeds.map((feed) => [feed.id, feed]));
      this.source = null;
      // The epoch of the revisions the feeds hold.
      this.epoch = null;
      this.failures = 0;
      this.timer = null;
    }

    // Each feed resumes after its revision, or asks for a snapshot.
    url() {
      const query = new URLSearchParams();
      for (const feed of this.feeds.values()) {
        query.append('s', `${feed.id}:${feed.view.name}`);
        if (feed.needsSnapshot) query.append(`${feed.id}.snapshot`, 'true');
        else query.append(`${feed.id}.revision`, String(feed.revision + 1));
      }
      if (server.epoch) query.set('epoch', server.epoch);
      if (server.tokens.read && storedToken()) query.set('access_token', storedToken());
      return `/streams?${query}`;
    }

    open() {
      this.close();
      this.epoch = server.epoch;
      const source = new EventSource(this.url());
      this.source = source;
      for (const feed of this.feeds.values()) {
        feed.upstreamLost = null; // the server says again if it still is
        feed.waiting();
      }
      // The feed an event is for, if it is for this connection's source.
      const target = (event) => {
        if (source !== this.source) return null;
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return null;
        }
        const feed = isObject(data) && typeof data.sub === 'string' ? this.feeds.get(data.sub) : undefined;
        return feed ? { feed, data } : null;
      };
      source.addEventListener('snapshot', (event) => {
        const hit = target(event);
        if (!hit || !Number.isInteger(hit.data.revision)) return;
        this.failures = 0;
        hit.feed.snapshot(hit.data.revision, hit.data.view);
      });
      source.addEventListener('change', (event) => {
        const hit = target(event);
        if (!hit) return;
        if (!hit.feed.change(hit.data.revision, hit.data.patch)) this.restart([hit.feed]);
      });
      source.addEventListener('catch-up', (event) => {
        const hit = target(event);
        if (hit && Number.isInteger(hit.data.revision)) hit.feed.catchUp(hit.data.revision, hit.data.patch);
      });
      source.addEventListener('reset', (event) => {
        const hit = target(event);
        if (hit) this.restart([hit.feed]);
      });
      source.addEventListener('stale', (event) => {
        const hit = target(event);
        if (hit) hit.feed.stale(hit.data);
      });
      source.addEventListener('fresh', (event) => {
        const hit = target(event);
        if (hit) hit.feed.fresh();
      });
      source.addEventListener('open', () => {
        // A reconnection with Last-Event-ID continues where each was.
        if (source !== this.source) return;
        for (const feed of this.feeds.values()) {
          if (feed.model !== null && !feed.needsSnapshot) feed.setState('live');
        }
      });
      source.addEventListener('error', () => {
        if (source !== this.source) return;
        if (source.readyState === EventSource.CLOSED) this.restart([]);
        else for (const feed of this.feeds.values()) feed.waiting();
      });
    }

    close() {
      if (this.source) this.source.close();
      this.source = null;
      clearTimeout(this.timer);
    }

    // Starts `feeds` over from a snapshot (the others resume after their
    // revisions), after a growing pause, with the server's current epoch
    // (a restarted in-memory server has a new history: then every feed
    // starts over).
    restart(feeds) {
      this.close();
      for (const feed of feeds) feed.needsSnapshot = true;
      for (const feed of this.feeds.values()) feed.waiting();
      const delay = Math.min(250 * 2 ** this.failures, 10000);
      this.failures += 1;
      this.timer = setTimeout(async () => {
        try {
          await health();
          if (server.epoch !== this.epoch) {
            for (const feed of this.feeds.values()) feed.needsSnapshot = true;
          }
          if (server.tokens.read && (await readRefused(this.url()))) {
            await askToken(storedToken()
              ? 'The server refused that token. Enter a read or write token to see the views:'
              : 'This server needs a token to show its views. Enter a read or write token:');
          }
          this.open();
        } catch {
          this.restart([]);
        }
      }, delay);
    }
  }

  // Follows `feeds` over as few connections as the server allows.
  function follow(feeds) {
    for (let i = 0; i < feeds.length; i += MAX_SUBSCRIPTIONS) {
      new Connection(feeds.slice(i, i + MAX_SUBSCRIPTIONS)).open();
    }
  }

  // ---------------------------------------------------------------- write

  // Sends a write with the stored token; on a 401 asks for a token and
  // tries again, until the user cancels. Resolves with the answer's
  // X-Revision; rejects with the server's error message.
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

  // --------------------------------------------------------------- panels

  // The panels the services' scripts register, by view name.
  const designs = new Map();

  // Registers `spec` for the views the calling script was loaded for.
  function panel(spec) {
    const script = document.currentScript;
    if (!script || !isObject(spec) || typeof spec.mount !== 'function') {
      throw new Error('duality.panel({mount, …}) is called by a panel script as it runs');
    }
    for (const name of (script.dataset.views || '').split(/\s+/)) {
      if (name) designs.set(name, spec);
    }
  }

  // A panel's frame: its heading, revision and connection state; what
  // follows the header is the renderer's.
  function frame(view, title, note, span) {
    const panel = h('article', { class: 'panel', 'data-view': view.name, 'data-state': 'connecting' },
      h('header', { class: 'panel-head' },
        h('h2', {}, title, note ? h('small', {}, note) : null),
        h('span', { class: 'meta' },
          h('span', { class: 'rev' }, 'rev ', h('b', { 'data-role': 'revision' }, '–')),
          h('span', { class: 'conn', 'data-role': 'conn' }, 'connecting'))));
    const columns = Number.isInteger(span) ? Math.min(Math.max(span, 1), 10) : 5;
    panel.style.setProperty('--span', String(columns));
    return panel;
  }

  // The service's panel for `view`, or null if it has none or it fails.
  function designed(view) {
    const spec = designs.get(view.name);
    if (!spec) return null;
    const text = (value, fallback) => (typeof value === 'function' ? value(view) : value) ?? fallback;
    const panel = frame(view, text(spec.title, view.name), text(spec.note, null), spec.span);
    try {
      const render = spec.mount(panel, view);
      if (typeof render !== 'function') throw new Error('mount returned no render function');
      return { panel, render };
    } catch (error) {
      console.error(`the panel of ${view.name} failed (${error.message}); showing its table`);
      return null;
    }
  }

  // ---------------------------------------------------------------- table

  // The generic panel: one row per document, by key. Object documents
  // spread their members over columns (nested values as compact JSON);
  // anything else, or documents with too many members, show as compact
  // JSON. A very large view shows its first rows.
  const MAX_ROWS = 500;
  const MAX_COLUMNS = 8;

  // Keys in order: by number if all are whole numbers (ids), else as
  // strings.
  function sortedKeys(model) {
    const keys = Object.keys(model);
    if (keys.every((k) => /^\d{1,15}$/.test(k))) return keys.sort((a, b) => Number(a) - Number(b));
    return keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
  // A member name in words: `customerName`, `customer_name` -> `customer name`.
  const label = (name) =>
    name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_\s-]+/g, ' ').trim().toLowerCase() || name;
  const isStructured = (value) => isObject(value) || Array.isArray(value);
  const cellText = (value) => (isStructured(value) ? JSON.stringify(value) : String(value));

  function columnsOf(docs) {
    const seen = new Set();
    for (const doc of docs) {
      if (isObject(doc)) for (const key of Object.keys(doc)) seen.add(key);
    }
    return seen.size > 0 && seen.size <= MAX_COLUMNS ? [...seen] : null;
  }

  // Puts `doc` in the cells after the key; true if a text changed.
  function fill(row, doc, columns) {
    const values = columns && isObject(doc) ? columns.map((c) => (has(doc, c) ? doc[c] : undefined)) : [doc];
    while (row.cells.length - 1 > values.length) row.lastChild.remove();
    while (row.cells.length - 1 < values.length) row.append(h('td', {}));
    let touched = false;
    values.forEach((value, i) => {
      const cell = row.cells[i + 1];
      cell.colSpan = values.length === 1 && columns ? columns.length : 1;
      const missing = value === undefined;
      touched = setText(cell, missing ? '—' : cellText(value)) || touched;
      cell.className = missing ? 'muted' : typeof value === 'number' ? 'num' : isStructured(value) ? 'json' : '';
    });
    return touched;
  }

  function table(panel, view) {
    const headRow = h('tr', {});
    const tbody = h('tbody', {});
    const empty = h('p', { class: 'empty', 'data-role': 'empty', hidden: true }, 'No documents yet.');
    const more = h('p', { class: 'empty', 'data-role': 'more', hidden: true });
    panel.append(h('div', { class: 'scroll' },
      h('table', { class: 'grid generic' }, h('thead', {}, headRow), tbody), empty, more));
    const rows = new Map();
    let layout = null;
    return (model, changed) => {
      const keys = sortedKeys(model);
      const shown = keys.slice(0, MAX_ROWS);
      const columns = columnsOf(shown.map((key) => model[key]));
      if (JSON.stringify(columns) !== layout) {
        layout = JSON.stringify(columns);
        headRow.replaceChildren(h('th', {}, 'key'),
          ...(columns ? columns.map((c) => h('th', { title: c }, label(c))) : [h('th', {}, 'document')]));
        for (const row of rows.values()) row.remove();
        rows.clear();
      }
      const kept = new Set(shown);
      for (const [key, row] of rows) {
        if (!kept.has(key)) {
          row.remove();
          rows.delete(key);
        }
      }
      for (const key of shown) {
        let row = rows.get(key);
        if (!row) {
          row = h('tr', { 'data-key': key }, h('td', { class: 'key', title: key }, key));
          rows.set(key, row);
        }
        const touched = fill(row, model[key], columns);
        tbody.append(row); // keeps the rows in key order
        if (changed && (touched || has(changed, key))) flash(row);
      }
      empty.hidden = keys.length > 0;
      more.hidden = keys.length <= MAX_ROWS;
      setText(more, `The first ${MAX_ROWS} of ${keys.length} documents; GET ${view.snapshot} has them all.`);
    };
  }

  // ----------------------------------------------------------------- boot

  // The served views, as /healthz lists them.
  function servedViews(body) {
    if (!Array.isArray(body.views)) return [];
    return body.views.filter((v) => isObject(v)
      && typeof v.name === 'string' && typeof v.snapshot === 'string' && typeof v.stream === 'string');
  }

  // The footer names what this server serves.
  function footer(views) {
    const parts = [];
    for (const view of views) {
      if (parts.length) parts.push(' · ');
      parts.push(h('code', {}, `GET ${view.snapshot}`), ' → ', h('code', {}, `${view.stream}?snapshot=true`));
    }
    document.getElementById('served').replaceChildren(...(parts.length ? parts : ['none']));
  }

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
    const views = servedViews(body);
    notice.hidden = views.length > 0;
    if (!views.length) setText(notice, 'This server serves no views.');
    footer(views);
    if (server.tokens.read && !storedToken()) {
      await askToken('This server needs a token to show its views. Enter a read or write token:');
    }
    // The panels their services designed first, then the tables; each
    // group in the order the server lists the views.
    const panels = views.map((view) => ({ view, shown: designed(view) }));
    panels.sort((a, b) => Number(b.shown !== null) - Number(a.shown !== null));
    const container = document.getElementById('panels');
    const feeds = panels.map(({ view, shown }, i) => {
      let { panel, render } = shown || {};
      if (!shown) {
        panel = frame(view, view.name, view.snapshot, null);
        render = table(panel, view);
      }
      container.append(panel);
      return new Feed(`v${i}`, panel, view, render);
    });
    follow(feeds);
  }

  window.duality = Object.freeze({ panel, h, setText, flash, has, isObject, send });

  // The panel scripts run after this one (they are named after it in the
  // page, all deferred, so while the document is already `interactive`):
  // the page is drawn once all have run and registered, at
  // DOMContentLoaded.
  if (document.readyState === 'complete') boot();
  else document.addEventListener('DOMContentLoaded', boot, { once: true });
})();
