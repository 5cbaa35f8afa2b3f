// Loads the live page in Debian's Chromium and checks that it follows the
// views: writes made through the API (from node, not from the page) appear
// without a reload, the page's own form works, and nothing is logged as an
// error. Saves a screenshot of the demo data the server was started with.
//
//   node check.mjs <base url> <screenshot path>
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1.

import {
  VIEWS, api as call, fail, locationRows, log, panelState, panelsIn, personRow, revisionIs, waitFor, withPage,
} from './lib.mjs';

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error('usage: node check.mjs <base url> <screenshot path>');
  process.exit(2);
}
const api = (...args) => call(base, ...args);

await withPage(async (page, errors) => {
  log('loads', `${base}/`);
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await waitFor(page, 'all three panels live', panelsIn, { views: VIEWS, state: 'live' });
  // A reload would lose this marker.
  await page.evaluate(() => { window.__notReloaded = true; });

  // 0. The server runs with --demo-data: the screenshot shows exactly what
  //    it loads, before this check writes anything.
  await waitFor(page, 'the demo persons', revisionIs, { view: 'persons', revision: 1 });
  await waitFor(page, 'the demo locations', locationRows, { Lisbon: 3, Turin: 2, Ghent: 1 });
  await page.screenshot({ path: screenshot, fullPage: true, animations: 'disabled' });
  log('screenshot of the demo data saved to', screenshot);

  // 1. A person created through the API appears with its city, and the
  //    locations table counts it. Its name is markup: shown as text.
  const name = '<img src=x onerror="window.__injected=1">Ada & "Lovelace"';
  const created = await api('POST', '/persons', { name, city: 'London' });
  const id = String(created.body.id);
  log(`created person ${id} at persons revision ${created.revision}`);
  await waitFor(page, `person ${id} in the persons table`, personRow, { id, name, city: 'London' });
  await waitFor(page, 'London with 1 in the locations table', locationRows, { London: 1 });
  await waitFor(page, `persons revision ${created.revision}`, revisionIs, { view: 'persons', revision: created.revision });
  const injected = await page.evaluate(() => [window.__injected, document.querySelectorAll('#persons-table img').length]);
  if (injected[0] !== undefined || injected[1] !== 0) fail('a name was rendered as HTML');

  // 2. A patch moves the person: the row and both cities change.
  const patched = await api('PATCH', `/persons/${id}`, { city: 'Paris' });
  await waitFor(page, `person ${id} moved to Paris`, personRow, { id, name, city: 'Paris' });
  await waitFor(page, 'London gone and Paris with 1', locationRows, { London: 0, Paris: 1 });
  await waitFor(page, `persons revision ${patched.revision}`, revisionIs, { view: 'persons', revision: patched.revision });

  // 3. The dashboard follows the customers service.
  const count = Number((await page.textContent('#customer-count')).replace(/,/g, ''));
  await api('POST', '/customers/items', { name: 'Zoe Browser', city: 'Berlin', country: 'Germany', scoring: 1 });
  await waitFor(page, `the customer count at ${count + 1}`, (n) =>
    document.getElementById('customer-count').textContent.replace(/,/g, '') === String(n), count + 1);

  // 4. The page's own form adds a person, and its delete button (two
  //    clicks, no dialog) removes one.
  await page.fill('#person-form input[name=name]', 'Grace Hopper');
  await page.fill('#person-form input[name=city]', 'Arlington');
  await page.click('#person-form [data-role=submit]');
  await waitFor(page, 'Grace Hopper added through the form', () =>
    [...document.querySelectorAll('#persons-table [data-field=name]')].some((c) => c.textContent === 'Grace Hopper'));
  await waitFor(page, 'Arlington with 1', locationRows, { Arlington: 1 });
  const grace = await page.evaluate(() =>
    [...document.querySelectorAll('#persons-table tbody tr')].find((r) => r.cells[1].textContent === 'Grace Hopper').dataset.id);
  const remove = `#persons-table tr[data-id="${grace}"] [data-action=delete]`;
  await page.click(remove);
  await page.click(remove);
  await waitFor(page, `person ${grace} deleted through the page`, (g) =>
    !document.querySelector(`#persons-table tr[data-id="${g}"]`), grace);
  await waitFor(page, 'Arlington gone', locationRows, { Arlington: 0 });

  // 5. A delete through the API removes the row and the city.
  await api('DELETE', `/persons/${id}`);
  await waitFor(page, `person ${id} gone`, (i) => !document.querySelector(`#persons-table tr[data-id="${i}"]`), id);
  await waitFor(page, 'Paris gone', locationRows, { Paris: 0 });

  if (!(await page.evaluate(() => window.__notReloaded === true))) fail('the page was reloaded');
  const states = await Promise.all(VIEWS.map((v) => panelState(page, v)));
  if (!states.every((s) => s.state === 'live' && s.indicator === 'live')) fail(`not every panel is live: ${JSON.stringify(states)}`);

  if (errors.length) fail(`the page logged errors:\n  ${errors.join('\n  ')}`);
});
