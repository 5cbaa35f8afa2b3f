#!/usr/bin/env node
// A duality consumer in Node.js: keeps read models of views (by default
// persons and locations, or the views named after the base URL, filtered or
// not) and prints one JSON line per change it applies.
//
//   node index.js <base url> [view path ...] [--until-revision NAME=N,...] [--seconds S]
//
// A view path may carry a filter (docs/PROTOCOL.md, "Filters"):
// `/persons?key=1&key=2`, `/locations?where={"total":1}`. A view is named by
// its path's last segment (`persons`), in the lines it prints and in
// --until-revision.
//
// For each view it bootstraps from the snapshot (GET, X-Revision and
// X-Epoch headers), subscribes to the stream the snapshot's `Link` names
// (for a filtered snapshot, the stream of the same subset) from revision + 1
// (`?revision=`, with `?epoch=` so a restarted server with another history
// answers 410 instead of continuing someone else's numbering), and applies
// each change event's JSON Merge Patch. The `eventsource` package reconnects
// by itself with Last-Event-ID after a dropped connection; when the stream
// is gone for good (410, a `reset` event, a gap in an unfiltered stream) it
// starts over from the snapshot.
//
// A filtered stream sends only the changes of its subset, so its ids skip;
// its `progress` events (`id` = the revision reached) move the position
// without a change, and EventSource resumes after them. Every stream sends
// `caught-up` once per connection, when it has sent what the server had.
//
// stdout: {"view":"persons","revision":7,"from":"patch","model":{...}} per
// applied change ("from":"snapshot" after each bootstrap, "from":"progress"
// when a filtered view's position moved without a change). stderr: what
// happens to the connections.
//
// --until-revision: exit 0 once every named view reached that revision.
// --seconds: stop after S seconds (exit 0, or 1 if --until-revision was not
// reached by then).

'use strict';

const { EventSource } = require('eventsource');
const mergePatch = require('json-merge-patch');

const DEFAULT_VIEWS = ['/persons', '/locations'];

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error('usage: node index.js <base url> [view path ...] [--until-revision NAME=N,...] [--seconds S]');
  console.error("       e.g. node index.js http://127.0.0.1:3000 '/persons?key=1&key=2' /locations");
  process.exit(2);
}

// `/persons?key=1` → `persons`.
function viewName(path) {
  const segments = path.split('?')[0].split('/').filter((s) => s !== '');
  return decodeURIComponent(segments[segments.length - 1] || '');
}

function parseArgs(argv) {
  const options = { base: null, views: [], until: {}, seconds: null };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--until-revision') {
      for (const pair of value().split(',')) {
        const [view, revision] = pair.split('=');
        if (!view || !/^\d+$/.test(revision || '')) usage(`bad --until-revision entry \`${pair}\``);
        options.until[view] = Number(revision);
      }
    } else if (arg === '--seconds') {
      const seconds = Number(value());
      if (!(seconds > 0)) usage('--seconds must be a positive number');
      options.seconds = seconds;
    } else if (arg === '--help' || arg === '-h') {
      usage();
    } else if (!options.base && !arg.startsWith('-')) {
      options.base = arg.replace(/\/+$/, '');
    } else if (arg.startsWith('/')) {
      options.views.push(arg);
    } else {
      usage(`unexpected argument \`${arg}\``);
    }
  }
  if (!options.base) usage('the base URL is required');
  try {
    new URL(options.base);
  } catch {
    usage(`not a URL: ${options.base}`);
  }
  if (options.views.length === 0) options.views = DEFAULT_VIEWS;
  const names = options.views.map(viewName);
  if (names.some((name) => name === '')) usage('a view path needs a name (`/persons`)');
  if (new Set(names).size !== names.length) usage(`give each view once (${names.join(', ')})`);
  for (const name of Object.keys(options.until)) {
    if (!names.includes(name)) usage(`--until-revision names \`${name}\`, which is not followed (${names.join(', ')})`);
  }
  return options;
}

// The stream a snapshot names: `Link: </person-events?key=1>; rel="duality-stream"`.
function streamLink(header) {
  for (const value of (header || '').split(',')) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(value);
    if (!match) continue;
    const named = match[2].split(';').some((param) => {
      const [key, rel] = param.split('=');
      return key && rel && key.trim().toLowerCase() === 'rel'
        && rel.trim().replace(/"/g, '').split(/\s+/).includes('duality-stream');
    });
    if (named && match[1].startsWith('/') && !match[1].startsWith('//')) return match[1];
  }
  return null;
}

// Whether a path asks for part of a view (a `key` or `where` parameter).
function isFiltered(path) {
  const params = new URL(path, 'http://filter.invalid').searchParams;
  return params.has('key') || params.has('where');
}

// json-merge-patch refuses these keys (prototype pollution guard) and then
// skips the rest of that object, so a patch naming one (a city may be called
// "constructor") cannot be applied faithfully: start over from the snapshot.
const GUARDED = new Set(['__proto__', 'constructor', 'prototype']);
function hasGuardedKey(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.keys(value).some((key) => GUARDED.has(key) || hasGuardedKey(value[key]));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Follower {
  constructor(base, path, onChange) {
    this.base = base;
    this.name = viewName(path);
    this.snapshot = path;
    this.stream = null;
    this.filtered = isFiltered(path);
    this.onChange = onChange;
    this.model = null;
    this.revision = null;
    this.epoch = null;
    this.source = null;
    this.failures = 0;
    this.stopped = false;
    this.restarting = false;
  }

  log(message) {
    console.error(`[${this.name}] ${message}`);
  }

  // GET the snapshot until it answers, with backoff.
  async bootstrap() {
    while (!this.stopped) {
      try {
        const response = await fetch(this.base + this.snapshot, { headers: { accept: 'application/json' } });
        if (!response.ok) throw new Error(`GET ${this.snapshot} answered ${response.status}`);
        const revision = Number(response.headers.get('x-revision'));
        if (!Number.isInteger(revision)) throw new Error('the snapshot has no X-Revision');
        const stream = streamLink(response.headers.get('link'));
        if (!stream) throw new Error(`the snapshot names no stream (Link: <path>; rel="duality-stream")`);
        this.model = await response.json();
        this.revision = revision;
        this.epoch = response.headers.get('x-epoch');
        this.stream = stream;
        this.filtered = isFiltered(this.snapshot) || isFiltered(stream);
        this.failures = 0;
        this.onChange(this, 'snapshot');
        this.subscribe();
        return;
      } catch (error) {
        const delay = Math.min(200 * 2 ** this.failures, 5000);
        this.failures += 1;
        this.log(`${error.message}; retrying in ${delay} ms`);
        await sleep(delay);
      }
    }
  }

  // Moves a filtered view's position without a change (progress,
  // caught-up): nothing of its subset changed up to `revision`.
  advance(revision) {
    if (!this.filtered || !Number.isInteger(revision) || revision <= this.revision) return;
    this.revision = revision;
    this.onChange(this, 'progress');
  }

  subscribe() {
    // The link keeps the filter; the position and the epoch are added.
    const url = new URL(this.stream, this.base);
    url.searchParams.set('revision', String(this.revision + 1));
    if (this.epoch) url.searchParams.set('epoch', this.epoch);
    const source = new EventSource(url);
    this.source = source;

    source.addEventListener('open', () => {
      const what = this.filtered ? 'filtered stream' : 'stream';
      this.log(`following the ${what} ${url.pathname}${url.search} after revision ${this.revision}`);
    });
    source.addEventListener('message', (event) => {
      if (source !== this.source) return;
      const revision = Number(event.lastEventId);
      if (revision <= this.revision) return; // seen already (events are idempotent anyway)
      // A filtered stream skips the revisions that left its subset alone;
      // an unfiltered one must not skip any.
      if (revision !== this.revision + 1 && !this.filtered) {
        this.restart(`expected revision ${this.revision + 1}, got ${revision}`);
        return;
      }
      const patch = JSON.parse(event.data);
      if (hasGuardedKey(patch)) {
        this.restart(`revision ${revision} names a key json-merge-patch will not apply`);
        return;
      }
      this.model = mergePatch.apply(this.model, patch);
      this.revision = revision;
      this.onChange(this, 'patch');
    });
    // Its id is the position, which EventSource sends as Last-Event-ID
    // when it reconnects.
    source.addEventListener('progress', (event) => {
      if (source === this.source) this.advance(Number(event.lastEventId));
    });
    source.addEventListener('caught-up', (event) => {
      if (source !== this.source) return;
      let reached = null;
      try {
        reached = JSON.parse(event.data).revision;
      } catch {
        // Only a hint: a malformed one changes nothing.
      }
      this.log(`caught up at revision ${reached}`);
      this.advance(reached);
    });
    source.addEventListener('reset', () => {
      if (source === this.source) this.restart('the server sent reset (this consumer fell too far behind)');
    });
    source.addEventListener('error', (event) => {
      if (source !== this.source) return;
      if (event.code === 410 || source.readyState === EventSource.CLOSED) {
        this.restart(`the stream is gone (${event.code || 'closed'}: ${event.message || 'no detail'})`);
      } else {
        // Dropped: eventsource reconnects by itself with Last-Event-ID.
        this.log(`connection lost (${event.message || 'no detail'}); reconnecting`);
      }
    });
  }

  // Starts over from the snapshot.
  async restart(why) {
    if (this.restarting || this.stopped) return;
    this.restarting = true;
    this.log(`${why}; starting over from the snapshot`);
    this.stop(false);
    await sleep(Math.min(100 * 2 ** this.failures, 5000));
    this.failures += 1;
    this.restarting = false;
    await this.bootstrap();
  }

  stop(forever = true) {
    if (forever) this.stopped = true;
    if (this.source) this.source.close();
    this.source = null;
  }
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const followers = [];

  let finished = false;
  const finish = (code) => {
    if (finished) return;
    finished = true;
    for (const follower of followers) follower.stop();
    process.exitCode = code;
    // Let stdout drain, then leave (open sockets would keep node alive).
    process.stdout.write('', () => process.exit(code));
  };

  const reached = () =>
    Object.keys(options.until).length > 0
    && followers.every((f) => options.until[f.name] === undefined || (f.revision !== null && f.revision >= options.until[f.name]));

  const onChange = (follower, from) => {
    process.stdout.write(`${JSON.stringify({ view: follower.name, revision: follower.revision, from, model: follower.model })}\n`);
    if (reached()) finish(0);
  };

  for (const path of options.views) {
    followers.push(new Follower(options.base, path, onChange));
  }
  if (options.seconds !== null) {
    setTimeout(() => {
      if (Object.keys(options.until).length > 0) {
        const at = followers.map((f) => `${f.name}=${f.revision}`).join(',');
        console.error(`error: --until-revision not reached within ${options.seconds} s (at ${at})`);
        finish(1);
      } else {
        finish(0);
      }
    }, options.seconds * 1000);
  }
  process.on('SIGINT', () => finish(0));
  process.on('SIGTERM', () => finish(0));
  for (const follower of followers) follower.bootstrap();
}

main();
