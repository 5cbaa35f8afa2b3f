// The dashboard panel of a split aggregates service while its backend is
// lost and regained. Run by tests/browser.rs, which kills and restarts the
// backend; the two talk over stdin/stdout:
//
//   node upstream.mjs <aggregates base url>
//   -> READY       the dashboard panel is live
//   <- KILLED      the backend is gone (kill -9)
//   -> STALE       the panel says so although its own stream is still up
//   <- RESTARTED   the backend is back
//
// Then the panel must be live again, without a reload.

import readline from 'node:readline';
import { fail, log, panelsIn, waitFor, withPage } from './lib.mjs';

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node upstream.mjs <base url>');
  process.exit(2);
}
const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function expectLine(word) {
  const { value, done } = await input.next();
  if (done || value.split(' ')[0] !== word) fail(`expected ${word} on stdin, got ${done ? 'the end' : value}`);
}

const DASHBOARD = ['dashboard'];

await withPage(async (page, errors) => {
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await waitFor(page, 'the dashboard live', panelsIn, { views: DASHBOARD, state: 'live' });
  await page.evaluate(() => { window.__notReloaded = true; });
  console.log('READY');

  await expectLine('KILLED');
  await waitFor(page, 'the dashboard marked stale', panelsIn, { views: DASHBOARD, state: 'stale' });
  const title = await page.evaluate(() =>
    document.querySelector('[data-view=dashboard] [data-role=conn]').title);
  if (!title.includes('upstream')) fail(`the stale mark does not say why: ${title}`);
  console.log('STALE');

  await expectLine('RESTARTED');
  await waitFor(page, 'the dashboard live again', panelsIn, { views: DASHBOARD, state: 'live' });
  if (!(await page.evaluate(() => window.__notReloaded === true))) fail('the page was reloaded');
  const thrown = errors.filter((e) => e.startsWith('page error'));
  if (thrown.length) fail(`the page threw:\n  ${thrown.join('\n  ')}`);
  log('stale and fresh shown');
});
process.stdin.destroy();
