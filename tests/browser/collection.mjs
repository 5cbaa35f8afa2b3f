// A collection's panel (`--collection notes`): shown from /healthz, live,
// and current without a reload after API writes. Run by tests/browser.rs:
//
//   node collection.mjs <base url>

import { api, fail, log, waitFor, withPage } from './lib.mjs';

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node collection.mjs <base url>');
  process.exit(2);
}

const panelLive = () => {
  const panel = document.querySelector('[data-collection="notes"]');
  return panel && panel.dataset.state === 'live';
};
const rowShows = ({ key, json }) => {
  const row = document.querySelector(`[data-collection="notes"] tr[data-key="${key}"]`);
  return json === null ? !row : Boolean(row && row.cells[1].textContent === json);
};

await withPage(async (page, errors) => {
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await waitFor(page, 'the notes panel live', panelLive);
  await api(base, 'PUT', '/collections/notes/items/first', { text: '<b>hi</b>', n: 1 });
  await waitFor(page, 'the new document shown', rowShows,
    { key: 'first', json: JSON.stringify({ n: 1, text: '<b>hi</b>' }) });
  const injected = await page.evaluate(() => document.querySelectorAll('[data-collection] tbody b').length);
  if (injected) fail('stored text was rendered as HTML');
  await api(base, 'PATCH', '/collections/notes/items/first', { n: null });
  await waitFor(page, 'the patched document shown', rowShows,
    { key: 'first', json: JSON.stringify({ text: '<b>hi</b>' }) });
  await api(base, 'DELETE', '/collections/notes/items/first');
  await waitFor(page, 'the deleted document gone', rowShows, { key: 'first', json: null });
  const thrown = errors.filter((e) => e.startsWith('page error'));
  if (thrown.length) fail(`the page threw:\n  ${thrown.join('\n  ')}`);
  log('the collection panel follows its stream');
});
