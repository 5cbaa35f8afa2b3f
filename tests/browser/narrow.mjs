// The live page in a 420 px wide window: nothing scrolls the page sideways
// (wide tables scroll inside their panel), nothing spills out of a card or
// is squeezed to a sliver, and the dashboard shows words, not the field
// names of the JSON it follows.
//
//   node narrow.mjs <base url>
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1.

import { VIEWS, fail, log, panelsIn, waitFor, withPage } from './lib.mjs';

const [base] = process.argv.slice(2);
if (!base) {
  console.error('usage: node narrow.mjs <base url>');
  process.exit(2);
}

const WIDTH = 420;
const FIELD_NAMES = [
  'customerCount', 'topCustomers', 'customersWithMostIncidents',
  'customersWithHighestIncidentVolume', 'numberOfIncidents', 'incidentVolume', 'customerName',
];

await withPage(async (page, errors) => {
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await waitFor(page, 'all panels live', panelsIn, { views: VIEWS, state: 'live' });
  await waitFor(page, 'the dashboard filled', () =>
    document.querySelectorAll('#top-customers li:not(.empty)').length > 0);
  const width = await page.evaluate(() => ({
    inner: window.innerWidth,
    scroll: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
  }));
  if (width.inner !== WIDTH) fail(`the window is ${width.inner} px wide`);
  if (width.scroll > WIDTH || width.body > WIDTH) {
    const wide = await page.evaluate((max) => [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > max + 0.5)
      .slice(0, 8)
      .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}.${e.className}`), WIDTH);
    fail(`the page is ${width.scroll} px wide at ${WIDTH} px; too wide: ${wide.join(', ')}`);
  }
  log(`ok: the page is ${width.scroll} px wide in a ${WIDTH} px window`);
  // Readable, not just squeezed in: nothing spills out of a dashboard card,
  // customer names get room, the tagline is not a column of single words.
  const squeezed = await page.evaluate(() => {
    const found = [];
    for (const card of document.querySelectorAll('.card')) {
      const edge = card.getBoundingClientRect().right;
      for (const e of card.querySelectorAll('*')) {
        if (e.getBoundingClientRect().right > edge + 0.5) found.push(`${e.className || e.tagName} spills out of its card`);
      }
    }
    for (const name of document.querySelectorAll('.list .name, .bars .name')) {
      const w = name.getBoundingClientRect().width;
      if (w < 80) found.push(`the name "${name.textContent}" gets ${w.toFixed(0)} px`);
    }
    const tagline = document.querySelector('.tagline').getBoundingClientRect().width;
    if (tagline < 200) found.push(`the tagline gets ${tagline.toFixed(0)} px`);
    return found;
  });
  if (squeezed.length) fail(`squeezed at ${WIDTH} px:\n  ${squeezed.slice(0, 10).join('\n  ')}`);
  log('ok: cards, names and the header have room');
  const text = await page.evaluate(() => document.body.innerText);
  const raw = FIELD_NAMES.filter((name) => text.includes(name));
  if (raw.length) fail(`the page shows field names as labels: ${raw.join(', ')}`);
  log('ok: no field name shown as a label');
  if (errors.length) fail(`errors in the page:\n  ${errors.join('\n  ')}`);
}, { viewport: { width: WIDTH, height: 900 } });
