// The page of a server built from the engine alone (examples/stock: the
// views products, stock and totals, no built-in service): it shows each of
// its views in a panel, live (writes through the API appear without a
// reload), names them in the footer, and shows, loads and asks for nothing
// of the built-in services. Run by tests/browser.rs:
//
//   node stock.mjs <base url>
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1.

import { api as call, fail, log, panelsIn, revisionIs, rowCells, waitFor, withPage } from './lib.mjs';

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node stock.mjs <base url>');
  process.exit(2);
}
const api = (...args) => call(base, ...args);

const VIEWS = ['products', 'stock', 'totals'];
const BUILTIN = ['person', 'location', 'dashboard', 'customer', 'incident', 'aggregate'];

await withPage(async (page, errors) => {
  const requested = [];
  page.on('request', (request) => requested.push(new URL(request.url()).pathname));
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await waitFor(page, 'the products, stock and totals panels live', panelsIn, { views: VIEWS, state: 'live' });
  await page.evaluate(() => { window.__notReloaded = true; });

  // Writes through the API appear in the panels, as text.
  const name = '<img src=x onerror="window.__injected=1">Bolt';
  await api('PUT', '/products/p1', { name });
  await waitFor(page, 'p1 in the products panel', rowCells, { view: 'products', key: 'p1', cells: [name] });
  await api('PUT', '/stock/p1/north', { quantity: 5 });
  await waitFor(page, 'p1/north with 5 in the stock panel', rowCells, { view: 'stock', key: 'p1/north', cells: ['5'] });
  await waitFor(page, 'p1 with 5 in the totals panel', rowCells, { view: 'totals', key: 'p1', cells: ['5'] });
  const south = await api('PUT', '/stock/p1/south', { quantity: 2 });
  await waitFor(page, 'p1 with 7 in the totals panel', rowCells, { view: 'totals', key: 'p1', cells: ['7'] });
  await waitFor(page, `totals revision ${south.revision}`, revisionIs, { view: 'totals', revision: south.revision });
  await api('PUT', '/stock/p1/north', { quantity: 0 });
  await waitFor(page, 'p1/north gone from the stock panel', rowCells, { view: 'stock', key: 'p1/north', cells: null });
  await waitFor(page, 'p1 with 2 in the totals panel', rowCells, { view: 'totals', key: 'p1', cells: ['2'] });
  const injected = await page.evaluate(() => [window.__injected, document.querySelectorAll('#panels img').length]);
  if (injected[0] !== undefined || injected[1] !== 0) fail('a name was rendered as HTML');

  // The columns are the documents' members, in words.
  const heads = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-view]')].map((p) =>
    [p.dataset.view, [...p.querySelectorAll('th')].map((th) => th.textContent)])));
  const expected = { products: ['key', 'name'], stock: ['key', 'quantity'], totals: ['key', 'total'] };
  if (JSON.stringify(heads) !== JSON.stringify(expected)) fail(`the panels' columns: ${JSON.stringify(heads)}`);
  log('ok: one panel per view, with its columns');

  // The footer names this server's views.
  const footer = await page.textContent('#served');
  for (const path of ['GET /products', '/product-events?snapshot=true', 'GET /stock', '/stock-events?snapshot=true',
    'GET /totals', '/total-events?snapshot=true']) {
    if (!footer.includes(path)) fail(`the footer does not name ${path}: ${footer}`);
  }
  log('ok: the footer names the served views');

  // Nothing of the built-in services: no text, no markup, no request.
  const text = (await page.evaluate(() => document.body.innerText)).toLowerCase();
  const html = (await page.content()).toLowerCase();
  const shown = BUILTIN.filter((word) => text.includes(word) || html.includes(word));
  if (shown.length) fail(`the page shows or names built-in services: ${shown.join(', ')}`);
  const asked = requested.filter((path) => BUILTIN.some((word) => path.includes(word)));
  if (asked.length) fail(`the page requested ${asked.join(', ')}`);
  if (!(await page.evaluate(() => document.getElementById('notice').hidden))) {
    fail(`the page shows a notice: ${await page.textContent('#notice')}`);
  }
  log(`ok: nothing of the built-in services in ${requested.length} requests`);

  if (!(await page.evaluate(() => window.__notReloaded === true))) fail('the page was reloaded');
  if (errors.length) fail(`the page logged errors:\n  ${errors.join('\n  ')}`);
});
