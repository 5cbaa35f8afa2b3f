// The API page at /docs: lists the operations of /openapi.json, builds a
// form for the one picked (its path, query and header parameters, and a
// JSON body prefilled from its schema), sends it with fetch and shows the
// answer's status, headers and body. No framework; every text lands in the
// DOM as textContent, never parsed as HTML.
'use strict';

(() => {
  const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
  const TOKEN_KEY = 'duality.token';
  // A change stream never ends: show what came within this time, then stop.
  const STREAM_WINDOW_MS = 3000;
  const BODY_LIMIT = 64 * 1024;

  let doc = null;
  let base = '';
  let memoryToken = '';

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === 'class') node.className = value;
      else if (name.startsWith('data-') || name.startsWith('aria-')) node.setAttribute(name, value);
      else node[name] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

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
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: memory only */ }
  }

  // --------------------------------------------------------------- schema

  // Follows a local `$ref` (`#/components/schemas/Name`).
  function resolve(schema, depth = 0) {
    if (!isObject(schema) || typeof schema.$ref !== 'string' || depth > 20) return schema;
    const path = schema.$ref.replace(/^#\//, '').split('/');
    let target = doc;
    for (const part of path) target = isObject(target) ? target[part] : undefined;
    return resolve(target, depth + 1);
  }

  // A value the schema accepts, to start the body from.
  function example(schema, depth = 0) {
    const s = resolve(schema);
    if (!isObject(s) || depth > 8) return null;
    if ('const' in s) return s.const;
    if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
    const variants = s.anyOf || s.oneOf;
    if (Array.isArray(variants)) {
      const first = variants.find((v) => resolve(v)?.type !== 'null') || variants[0];
      return example(first, depth + 1);
    }
    const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
    switch (type) {
      case 'object': {
        const out = {};
        const props = isObject(s.properties) ? s.properties : {};
        const required = Array.isArray(s.required) ? s.required : Object.keys(props);
        for (const key of required) out[key] = example(props[key], depth + 1);
        return out;
      }
      case 'array': return [];
      case 'integer': return typeof s.minimum === 'number' ? Math.max(s.minimum, Math.min(1, s.maximum ?? 1)) : 1;
      case 'number': return typeof s.minimum === 'number' ? Math.max(s.minimum, 1) : 1;
      case 'boolean': return true;
      case 'string': return s.format === 'uuid' ? '00000000-0000-0000-0000-000000000000' : 'text';
      default: return null;
    }
  }

  // A short description of a parameter's schema, shown as its hint.
  function hint(schema) {
    const s = resolve(schema);
    if (!isObject(s)) return '';
    if (Array.isArray(s.enum)) return s.enum.join(' | ');
    const parts = [s.format || s.type || 'value'];
    if (typeof s.minimum === 'number' && s.minimum > 0) parts.push(`≥ ${s.minimum}`);
    if (typeof s.maxLength === 'number') parts.push(`≤ ${s.maxLength} chars`);
    return parts.join(', ');
  }

  // ------------------------------------------------------------ operations

  function operations() {
    const list = [];
    for (const [path, item] of Object.entries(doc.paths || {})) {
      if (!isObject(item)) continue;
      const shared = Array.isArray(item.parameters) ? item.parameters : [];
      for (const method of METHODS) {
        const op = item[method];
        if (!isObject(op)) continue;
        const own = Array.isArray(op.parameters) ? op.parameters : [];
        list.push({
          method,
          path,
          op,
          tag: Array.isArray(op.tags) && op.tags.length ? op.tags[0] : 'other',
          parameters: [...shared, ...own].map(resolve).filter(isObject),
        });
      }
    }
    return list;
  }

  function renderList(ops) {
    const root = document.getElementById('api-operations');
    const groups = new Map();
    for (const entry of ops) {
      if (!groups.has(entry.tag)) groups.set(entry.tag, []);
      groups.get(entry.tag).push(entry);
    }
    root.replaceChildren();
    for (const [tag, entries] of groups) {
      const items = entries.map((entry) => {
        const button = h('button', {
          type: 'button',
          class: 'api-op',
          'data-op': `${entry.method.toUpperCase()} ${entry.path}`,
          title: entry.op.summary || '',
        },
        h('span', { class: `verb verb-${entry.method}` }, entry.method.toUpperCase()),
        h('span', { class: 'api-path' }, entry.path));
        button.addEventListener('click', () => {
          for (const other of root.querySelectorAll('.api-op[aria-current]')) other.removeAttribute('aria-current');
          button.setAttribute('aria-current', 'true');
          renderTry(entry);
          // Stacked on a narrow screen: bring the form into view.
          if (window.matchMedia('(max-width: 800px)').matches) {
            document.getElementById('api-try').scrollIntoView({ block: 'start' });
          }
        });
        return h('li', {}, button);
      });
      root.append(h('section', { class: 'api-group' }, h('h2', {}, tag), h('ul', {}, ...items)));
    }
  }

  function filterList(text) {
    const words = text.trim().toLowerCase();
    for (const button of document.querySelectorAll('.api-op')) {
      const shown = !words || button.dataset.op.toLowerCase().includes(words)
        || button.title.toLowerCase().includes(words);
      button.parentElement.hidden = !shown;
    }
  }

  // ------------------------------------------------------------------ try

  function renderTry(entry) {
    const { method, path, op, parameters } = entry;
    const panel = document.getElementById('api-try');
    const form = h('form', { class: 'api-form', autocomplete: 'off' });
    const fields = [];
    for (const param of parameters) {
      if (!['path', 'query', 'header'].includes(param.in)) continue;
      const schema = resolve(param.schema) || {};
      let input;
      if (schema.type === 'boolean' || Array.isArray(schema.enum)) {
        const values = schema.type === 'boolean' ? ['true', 'false'] : schema.enum.map(String);
        input = h('select', { name: param.name },
          h('option', { value: '' }, param.required ? 'choose…' : '(not sent)'),
          ...values.map((v) => h('option', { value: v }, v)));
      } else {
        input = h('input', { name: param.name, placeholder: hint(schema), required: Boolean(param.required) });
      }
      input.setAttribute('data-param', param.name);
      input.setAttribute('data-in', param.in);
      fields.push(input);
      form.append(h('label', { class: 'api-field' },
        h('span', { class: 'api-name' }, param.name, param.required ? h('b', { class: 'req', title: 'required' }, ' *') : null),
        h('span', { class: 'api-in' }, param.in),
        input));
    }
    let body = null;
    const content = isObject(op.requestBody) && isObject(op.requestBody.content) ? op.requestBody.content : null;
    if (content && content['application/json']) {
      body = h('textarea', { name: 'body', rows: 6, spellcheck: false, 'data-role': 'body-input' });
      body.value = JSON.stringify(example(content['application/json'].schema), null, 2);
      form.append(h('label', { class: 'api-field api-body' },
        h('span', { class: 'api-name' }, 'body'), h('span', { class: 'api-in' }, 'application/json'), body));
    }
    const send = h('button', { type: 'submit', 'data-role': 'send' }, 'Send');
    form.append(h('div', { class: 'api-actions' }, send, h('code', { class: 'api-url', 'data-role': 'url' })));
    const answer = h('section', { class: 'api-answer', hidden: true, 'data-role': 'answer' },
      h('h3', {}, 'Answer ', h('span', { class: 'api-status', 'data-role': 'status' })),
      h('pre', { class: 'api-headers', 'data-role': 'headers' }),
      h('pre', { class: 'api-response', 'data-role': 'response' }));

    const statuses = Object.keys(isObject(op.responses) ? op.responses : {}).join(', ');
    panel.replaceChildren(...[
      h('h2', {}, h('span', { class: `verb verb-${method}` }, method.toUpperCase()), ' ', h('code', {}, path)),
      op.summary ? h('p', { class: 'api-summary' }, op.summary) : null,
      op.description ? h('p', { class: 'api-desc' }, op.description) : null,
      statuses ? h('p', { class: 'api-desc' }, `Answers: ${statuses}`) : null,
      form,
      answer,
    ].filter(Boolean));

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      await sendRequest(method, path, fields, body, answer, form.querySelector('[data-role=url]'), send);
    });
  }

  function buildUrl(path, fields) {
    let url = path;
    const query = new URLSearchParams();
    for (const input of fields) {
      const value = input.value;
      if (input.dataset.in === 'path') url = url.replace(`{${input.name}}`, encodeURIComponent(value));
      else if (input.dataset.in === 'query' && value !== '') query.set(input.name, value);
    }
    const search = query.toString();
    return `${base}${url}${search ? `?${search}` : ''}`;
  }

  async function readBody(response, stream) {
    if (!stream) return (await response.text()).slice(0, BODY_LIMIT);
    // Read what the stream sends within the window, then stop it.
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const stop = setTimeout(() => reader.cancel().catch(() => {}), STREAM_WINDOW_MS);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        if (text.length > BODY_LIMIT) break;
      }
    } catch { /* cancelled */ } finally {
      clearTimeout(stop);
      reader.cancel().catch(() => {});
    }
    return `${text.slice(0, BODY_LIMIT)}\n(a stream: what came within ${STREAM_WINDOW_MS / 1000} s; then this page stopped reading)`;
  }

  async function sendRequest(method, path, fields, body, answer, urlNode, button) {
    const url = buildUrl(path, fields);
    urlNode.textContent = `${method.toUpperCase()} ${url}`;
    const headers = {};
    for (const input of fields) {
      if (input.dataset.in === 'header' && input.value !== '') headers[input.name] = input.value;
    }
    const token = storedToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method: method.toUpperCase(), headers, cache: 'no-store' };
    if (body) {
      headers['Content-Type'] = 'application/json';
      init.body = body.value;
    }
    const status = answer.querySelector('[data-role=status]');
    const headersNode = answer.querySelector('[data-role=headers]');
    const responseNode = answer.querySelector('[data-role=response]');
    answer.hidden = false;
    answer.dataset.done = 'false';
    button.disabled = true;
    status.textContent = 'sending…';
    status.dataset.status = '';
    headersNode.textContent = '';
    responseNode.textContent = '';
    const abort = new AbortController();
    init.signal = abort.signal;
    try {
      const response = await fetch(url, init);
      status.textContent = `${response.status} ${response.statusText}`.trim();
      status.dataset.status = String(response.status);
      status.className = `api-status ${response.ok ? 'good' : 'bad'}`;
      headersNode.textContent = [...response.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
      const type = response.headers.get('content-type') || '';
      let text = await readBody(response, type.startsWith('text/event-stream'));
      if (type.startsWith('application/json')) {
        try {
          text = JSON.stringify(JSON.parse(text), null, 2);
        } catch { /* show it as it came */ }
      }
      responseNode.textContent = text;
    } catch (error) {
      status.textContent = `not sent: ${error.message}`;
      status.className = 'api-status bad';
    } finally {
      abort.abort();
      button.disabled = false;
      answer.dataset.done = 'true';
    }
  }

  // ----------------------------------------------------------------- boot

  async function boot() {
    const notice = document.getElementById('api-notice');
    try {
      const response = await fetch('/openapi.json', { cache: 'no-store' });
      if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status}`);
      doc = await response.json();
    } catch (error) {
      notice.hidden = false;
      notice.textContent = `Cannot load the API document (${error.message}).`;
      return;
    }
    const server = Array.isArray(doc.servers) && isObject(doc.servers[0]) ? doc.servers[0].url : '/';
    base = new URL(server, window.location.href).href.replace(/\/$/, '');
    const schemes = isObject(doc.components) && isObject(doc.components.securitySchemes);
    const tokenForm = document.getElementById('api-token');
    tokenForm.hidden = !schemes;
    tokenForm.elements.token.value = storedToken();
    tokenForm.elements.token.addEventListener('input', (event) => storeToken(event.target.value.trim()));
    tokenForm.addEventListener('submit', (event) => event.preventDefault());
    const filter = document.getElementById('api-filter');
    filter.addEventListener('input', () => filterList(filter.value));
    renderList(operations());
    document.body.dataset.ready = 'true';
  }

  boot();
})();
