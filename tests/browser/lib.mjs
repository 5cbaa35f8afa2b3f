// Shared by the browser checks: launching Debian's Chromium through
// playwright-core (which never downloads a browser), the API, and waiting
// for what the page shows.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const VIEWS = ['persons', 'locations', 'dashboard'];
const WAIT = 15_000;
const started = Date.now();

export const log = (...args) => console.log(`[${((Date.now() - started) / 1000).toFixed(2)}s]`, ...args);

export function fail(message) {
  throw new Error(message);
}

// Starts Chromium with a fresh profile; `run(page, errors)` does the checks.
// Exits 0 if it returns, 1 (with what failed) if it throws. `viewport`:
// the window's size (a desktop one unless given).
export async function withPage(run, { viewport = { width: 1360, height: 840 } } = {}) {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const errors = [];
  const userDataDir = mkdtempSync(join(tmpdir(), 'duality-chromium-'));
  let context;
  try {
    if (!existsSync(executablePath)) {
      fail(`no Chromium at ${executablePath}: install Debian's chromium (apt-get install chromium) or set CHROMIUM`);
    }
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      viewport,
      deviceScaleFactor: 1,
      colorScheme: 'light',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
    page.on('response', (response) => {
      if (response.status() >= 400) errors.push(`HTTP ${response.status()} for ${response.url()}`);
    });
    await run(page, errors);
    log('all checks passed');
  } catch (error) {
    console.error(`FAILED: ${error.message}`);
    if (errors.length) console.error(`errors seen:\n  ${errors.join('\n  ')}`);
    process.exitCode = 1;
  } finally {
    await context?.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

// A JSON API call from node (not from the page).
export async function api(base, method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) fail(`${method} ${path} answered ${response.status}: ${text}`);
  return {
    revision: Number(response.headers.get('x-revision')),
    body: text ? JSON.parse(text) : null,
  };
}

// What a panel shows, read from the DOM.
export const panelState = (page, view) =>
  page.evaluate((view) => {
    const panel = document.querySelector(`[data-view="${view}"]`);
    return panel && {
      hidden: panel.hidden,
      state: panel.dataset.state,
      revision: Number(panel.dataset.revision),
      indicator: panel.querySelector('[data-role=conn]').textContent,
    };
  }, view);

// Waits until `fn(arg)` is true in the page; fails with the panels' states.
export async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 50 });
  } catch {
    const states = {};
    const shown = await page.evaluate(() => [...document.querySelectorAll('[data-view]')].map((p) => p.dataset.view));
    for (const view of shown.length ? shown : VIEWS) states[view] = await panelState(page, view);
    fail(`timed out waiting for ${what}; panels: ${JSON.stringify(states)}`);
  }
  log('ok:', what);
}

// In the page: every named panel is shown and in `state`.
export const panelsIn = ({ views, state }) =>
  views.every((v) => {
    const panel = document.querySelector(`[data-view="${v}"]`);
    return panel && !panel.hidden && panel.dataset.state === state;
  });

// In the page: the persons table has this row.
export const personRow = ({ id, name, city }) => {
  const row = document.querySelector(`#persons-table tr[data-id="${id}"]`);
  return Boolean(row)
    && row.querySelector('[data-field=name]').textContent === name
    && row.querySelector('[data-field=city]').textContent === city;
};

// In the page: the persons table shows exactly these names, in order.
export const personNames = (names) =>
  JSON.stringify([...document.querySelectorAll('#persons-table [data-field=name]')].map((c) => c.textContent))
    === JSON.stringify(names);

// In the page: the locations table shows these totals (0: not listed).
export const locationRows = (expected) => {
  const rows = [...document.querySelectorAll('#locations-table tbody tr')];
  const shown = Object.fromEntries(rows.map((r) => [r.cells[0].textContent, Number(r.cells[1].textContent)]));
  return Object.entries(expected).every(([city, total]) => (total === 0 ? !(city in shown) : shown[city] === total));
};

// In the page: a generic panel's row of `key` shows these cells after the
// key (null: no such row).
export const rowCells = ({ view, key, cells }) => {
  const row = document.querySelector(`[data-view="${view}"] tr[data-key="${key}"]`);
  if (cells === null) return !row;
  return Boolean(row) && JSON.stringify([...row.cells].slice(1).map((c) => c.textContent)) === JSON.stringify(cells);
};

// In the page: a panel shows this revision.
export const revisionIs = ({ view, revision }) =>
  document.querySelector(`[data-view="${view}"]`).dataset.revision === String(revision);
