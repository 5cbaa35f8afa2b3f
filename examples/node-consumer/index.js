#!/usr/bin/env node
// A duality consumer in Node.js: keeps read models of the persons and
// locations views and prints one JSON line per change it applies.
//
//   node index.js <base url> [--until-revision persons=N,locations=M] [--seconds S]
//
// For each view it bootstraps from the snapshot (GET, X-Revision and
// X-Epoch headers), subscribes to the stream from revision + 1
// (`?revision=`, with `?epoch=` so a restarted server with another history
// answers 410 instead of continuing someone else's numbering), and applies
// each change event's JSON Merge Patch. The `eventsource` package reconnects
// by itself with Last-Event-ID after a dropped connection; when the stream
// is gone for good (410, a `reset` event, a gap) it starts over from the
// snapshot.
//
// stdout: {"view":"persons","revision":7,"from":"patch","model":{...}} per
// applied change ("from":"snapshot" after each bootstrap). stderr: what
// happens to the connections.
//
// --until-revision: exit 0 once every named view reached that revision.
// --seconds: stop after S seconds (exit 0, or 1 if --until-revision was not
// reached by then).

'use strict';

const { EventSource } = require('eventsource');
const mergePatch = require('json-merge-patch');

const VIEWS = {
  persons: { snapshot: '/persons', stream: '/person-events' },
  locations: { snapshot: '/locations', stream: '/location-events' },
};

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error('usage: node index.js <base url> [--until-revision persons=N,locations=M] [--seconds S]');
  process.exit(2);
}

function parseArgs(argv) {
  const options = { base: null, until: {}, seconds: null };
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
        if (!VIEWS[view] || !/^\d+$/.test(revision || '')) usage(`bad --until-revision entry \`${pair}\``);
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
  return options;
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
  constructor(base, name, paths, onChange) {
    this.base = base;
    this.name = name;
    this.paths = paths;
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
        const response = await fetch(this.base + this.paths.snapshot, { headers: { accept: 'application/json' } });
        if (!response.ok) throw new Error(`GET ${this.paths.snapshot} answered ${response.status}`);
        const revision = Number(response.headers.get('x-revision'));
        if (!Number.isInteger(revision)) throw new Error('the snapshot has no X-Revision');
        this.model = await response.json();
        this.revision = revision;
        this.epoch = response.headers.get('x-epoch');
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

  subscribe() {
    const url = new URL(this.paths.stream, this.base);
    url.searchParams.set('revision', String(this.revision + 1));
    if (this.epoch) url.searchParams.set('epoch', this.epoch);
    const source = new EventSource(url);
    this.source = source;

    source.addEventListener('open', () => this.log(`following ${url.pathname} after revision ${this.revision}`));
    source.addEventListener('message', (event) => {
      if (source !== this.source) return;
      const revision = Number(event.lastEventId);
      if (revision <= this.revision) return; // seen already (events are idempotent anyway)
      if (revision !== this.revision + 1) {
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

  for (const [name, paths] of Object.entries(VIEWS)) {
    followers.push(new Follower(options.base, name, paths, onChange));
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
