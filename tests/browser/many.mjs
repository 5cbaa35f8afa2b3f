// The page with more views than a browser opens connections to one host
// (six): the built-in services and several `--collection`s. Every panel
// must go live and take a change made through the API afterwards, without
// a reload, and the page must follow them all over ONE stream connection
// (GET /streams), not one per view. Run by tests/browser.rs:
//
//   node many.mjs <base url> <collection name>...

import { api, fail, log, waitFor, withPage } from './lib.mjs';

const [base, ...collections] = process.argv.slice(2);
if (!base || collections.length === 0) {
  console.error('usage: node many.mjs <base url> <collection name>...');
  process.exit(2);
}

// In the page: every panel's view name, state and revision.
const panels = () => [...document.querySelectorAll('[data-view]')].map((p) => ({
  view: p.dataset.view,
  state: p.dataset.state,
  revision: Number(p.dataset.revision),
}));

await withPage(async (page, errors) => {
  const streams = [];
  page.on('request', (request) => {
    if (request.resourceType() === 'eventsource') streams.push(request.url());
  });
  await page.goto(`${base}/`, { waitUntil: 'load' });
  const health = await (await fetch(`${base}/healthz`)).json();
  const views = health.views.map((v) => v.name);
  if (views.length < 12) fail(`only ${views.length} views served: ${views}`);
  for (const name of collections) {
    if (!views.includes(`collections.${name}`)) fail(`collections.${name} is not served: ${views}`);
  }
  await waitFor(page, `all ${views.length} panels live`, (n) => {
    const shown = [...document.querySelectorAll('[data-view]')];
    return shown.length === n && shown.every((p) => p.dataset.state === 'live');
  }, views.length);
  await page.evaluate(() => { window.__notReloaded = true; });
  const before = Object.fromEntries((await page.evaluate(panels)).map((p) => [p.view, p.revision]));

  // A change to every view: a person in a new city (persons, locations),
  // a customer and an incident (customers, incidents, the dashboard
  // composed from them), a document in each collection.
  await api(base, 'POST', '/persons', { name: 'Many Views', city: 'Sixtown' });
  await api(base, 'POST', '/customers/items', { name: 'Connie Ection', city: 'Oslo', country: 'Norway', scoring: 2 });
  await api(base, 'POST', '/incidents/items', { customerName: 'Connie Ection', category: 'network', amount: 7 });
  const written = {};
  for (const name of collections) {
    const done = await api(base, 'PUT', `/collections/${name}/items/live`, { from: name });
    written[`collections.${name}`] = done.revision;
  }
  await waitFor(page, 'a live change in every panel', (was) =>
    [...document.querySelectorAll('[data-view]')].every((p) =>
      p.dataset.state === 'live' && Number(p.dataset.revision) > was[p.dataset.view]), before);
  const after = await page.evaluate(panels);
  for (const { view, revision } of after) {
    if (view in written && revision !== written[view]) fail(`${view} shows revision ${revision}, not ${written[view]}`);
  }
  log('every panel moved:', after.map((p) => `${p.view} ${before[p.view]}→${p.revision}`).join(', '));

  if (streams.length !== 1) fail(`the page opened ${streams.length} streams, not one:\n  ${streams.join('\n  ')}`);
  const url = new URL(streams[0]);
  if (url.pathname !== '/streams') fail(`the page follows ${url.pathname}, not /streams`);
  if (url.searchParams.getAll('s').length !== views.length) fail(`not every view is subscribed: ${url}`);
  if (!(await page.evaluate(() => window.__notReloaded === true))) fail('the page was reloaded');
  if (errors.length) fail(`the page logged errors:\n  ${errors.join('\n  ')}`);
  log(`${views.length} panels live over one connection`);
});
