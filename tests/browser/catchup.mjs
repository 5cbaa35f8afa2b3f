// The page after an absence longer than the server keeps events (a laptop
// that slept): it catches each panel up with one patch, without a reload
// and without a new snapshot (docs/PROTOCOL.md, "Catch-up"). Run by
// tests/browser.rs, which stops the server, changes the same database
// through another one, waits for retention, and brings it back; the two
// talk over stdin/stdout:
//
//   node catchup.mjs <base url>
//   -> READY            the page is live and shows Ann and Bob
//   <- KILLED           the server is gone
//   -> STALE            the panels say so and keep the last state
//   <- BACK <revision>  the server is back on the same address; persons is
//                       at <revision>, and the events after the page's
//                       position are deleted
//
// Then the page must show the view at <revision> with no further change
// to nudge it: only the `catch-up` events can have brought it there.

import readline from 'node:readline';
import {
  api as call, fail, locationRows, log, panelsIn, personNames, revisionIs, waitFor, withPage,
} from './lib.mjs';

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node catchup.mjs <base url>');
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
  // Count the stream events the page receives, whoever listens to them.
  await page.addInitScript(() => {
    window.__events = {};
    const Native = window.EventSource;
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        for (const name of ['snapshot', 'catch-up']) {
          super.addEventListener(name, () => { window.__events[name] = (window.__events[name] || 0) + 1; });
        }
      }
    };
  });
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await waitFor(page, 'persons and locations live', panelsIn, { views: SHOWN, state: 'live' });
  await page.evaluate(() => { window.__notReloaded = true; });
  await api('POST', '/persons', { name: 'Ann', city: 'Rome' });
  await api('POST', '/persons', { name: 'Bob', city: 'Oslo' });
  await waitFor(page, 'Ann and Bob', personNames, ['Ann', 'Bob']);
  await waitFor(page, 'persons revision 2', revisionIs, { view: 'persons', revision: 2 });
  const snapshots = await page.evaluate(() => window.__events.snapshot);
  console.log('READY');

  await expectLine('KILLED');
  await waitFor(page, 'both panels stale', panelsIn, { views: SHOWN, state: 'stale' });
  console.log('STALE');

  const revision = Number(await expectLine('BACK'));
  await waitFor(page, 'Ann B. and Cy, Bob gone', personNames, ['Ann B.', 'Cy']);
  await waitFor(page, 'Rome 1, Paris 1, no Oslo', locationRows, { Rome: 1, Paris: 1, Oslo: 0 });
  await waitFor(page, `persons revision ${revision}`, revisionIs, { view: 'persons', revision });
  await waitFor(page, 'both panels live again', panelsIn, { views: SHOWN, state: 'live' });
  const seen = await page.evaluate(() => window.__events);
  if (seen['catch-up'] !== 2) fail(`expected one catch-up per panel, saw ${JSON.stringify(seen)}`);
  if (seen.snapshot !== snapshots) fail(`a snapshot was loaded again: ${JSON.stringify(seen)}`);
  if (!(await page.evaluate(() => window.__notReloaded === true))) fail('the page was reloaded');
  const thrown = errors.filter((e) => e.startsWith('page error'));
  if (thrown.length) fail(`the page threw:\n  ${thrown.join('\n  ')}`);
  log(`expected network errors while the server was down: ${errors.length}`);
});
process.stdin.destroy();
