// The page across a server restart with a new history (a `:memory:`
// database starts over: a new epoch, revisions from 0). Run by
// tests/browser.rs, which kills and restarts the server; the two talk over
// stdin/stdout:
//
//   node restart.mjs <base url>
//   -> READY            the page is live and shows Ann
//   <- KILLED           the server is gone (kill -9)
//   -> STALE            the panels say so and keep the last state
//   <- RESTARTED <epoch>  a new server on the same address, where Bob lives
//
// Then the page must show the new history (Bob, not Ann) without a reload:
// its stream, reconnecting with Last-Event-ID and the old epoch, gets 410,
// and the page starts over from a snapshot.

import readline from 'node:readline';
import {
  api as call, fail, locationRows, log, panelsIn, personNames, personRow, revisionIs, waitFor, withPage,
} from './lib.mjs';

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node restart.mjs <base url>');
  process.exit(2);
}
const api = (...args) => call(base, ...args);
const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function expectLine(word) {
  const { value, done } = await input.next();
  if (done || value.split(' ')[0] !== word) fail(`expected ${word} on stdin, got ${done ? 'the end' : value}`);
  return value.slice(word.length).trim();
}

const SHOWN = ['persons', 'locations'];

await withPage(async (page, errors) => {
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await waitFor(page, 'persons and locations live', panelsIn, { views: SHOWN, state: 'live' });
  // A view not served has no panel at all.
  if (!(await page.evaluate(() => document.querySelector('[data-view=dashboard]')?.hidden ?? true))) {
    fail('the dashboard panel is shown by a server that does not serve it');
  }
  await page.evaluate(() => { window.__notReloaded = true; });
  const ann = await api('POST', '/persons', { name: 'Ann', city: 'Rome' });
  await waitFor(page, 'Ann in Rome', personRow, { id: String(ann.body.id), name: 'Ann', city: 'Rome' });
  console.log('READY');

  await expectLine('KILLED');
  await waitFor(page, 'both panels stale', panelsIn, { views: SHOWN, state: 'stale' });
  await waitFor(page, 'the last state kept while stale', personNames, ['Ann']);
  console.log('STALE');

  const epoch = await expectLine('RESTARTED');
  await waitFor(page, 'only Bob, from the new history', personNames, ['Bob']);
  await waitFor(page, 'Oslo with 1 and no Rome', locationRows, { Oslo: 1, Rome: 0 });
  await waitFor(page, 'both panels live again', panelsIn, { views: SHOWN, state: 'live' });
  await waitFor(page, 'the new epoch in the header', (e) =>
    document.getElementById('epoch').textContent === e.slice(0, 8), epoch);

  // And the page keeps following the new server.
  const moved = await api('PATCH', '/persons/1', { city: 'Rome' });
  await waitFor(page, 'Bob moved to Rome', personRow, { id: '1', name: 'Bob', city: 'Rome' });
  await waitFor(page, `persons revision ${moved.revision}`, revisionIs, { view: 'persons', revision: moved.revision });
  await waitFor(page, 'Rome with 1 and no Oslo', locationRows, { Rome: 1, Oslo: 0 });

  if (!(await page.evaluate(() => window.__notReloaded === true))) fail('the page was reloaded');
  // Refused connections and the 410 are expected here; exceptions are not.
  const thrown = errors.filter((e) => e.startsWith('page error'));
  if (thrown.length) fail(`the page threw:\n  ${thrown.join('\n  ')}`);
  log(`expected network errors while the server was down: ${errors.length}`);
});
process.stdin.destroy();
