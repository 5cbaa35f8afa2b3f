// The page on a server that wants tokens: it asks for one when a write is
// answered 401 (and again when the token is refused), and at start when
// reads need one; then it follows the views through ?access_token= and
// writes with Authorization.
//
//   node token.mjs <base url> write <write token>
//   node token.mjs <base url> read <read token> <write token>
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1.

import { VIEWS, fail, log, panelsIn, personRow, waitFor, withPage } from './lib.mjs';

const [base, mode, token, writeToken] = process.argv.slice(2);
if (!base || !['write', 'read'].includes(mode) || !token || (mode === 'read' && !writeToken)) {
  console.error('usage: node token.mjs <base url> write <token> | read <read token> <write token>');
  process.exit(2);
}

const formShown = (words) => {
  const form = document.getElementById('token-form');
  return !form.hidden && form.querySelector('[data-role=token-reason]').textContent.includes(words);
};

async function enterToken(page, value) {
  await page.fill('#token-form input[name=token]', value);
  await page.click('#token-form [data-role=token-submit]');
}

// Refusals are expected here; anything else logged is an error.
const unexpected = (errors) => errors.filter((e) => !e.startsWith('HTTP 401 ') && !/status of 401/.test(e));

await withPage(async (page, errors) => {
  if (mode === 'write') {
    await page.goto(`${base}/`, { waitUntil: 'load' });
    await waitFor(page, 'all panels live without a token', panelsIn, { views: VIEWS, state: 'live' });
    await page.fill('#person-form input[name=name]', 'Grace Hopper');
    await page.click('#person-form [data-role=submit]');
    await waitFor(page, 'the page asks for a write token', formShown, 'need a token');
    await enterToken(page, 'not-the-token');
    await waitFor(page, 'the page says the token was refused', formShown, 'refused');
    await enterToken(page, token);
    await waitFor(page, 'the person written with the token', () =>
      [...document.querySelectorAll('#persons-table [data-field=name]')].some((c) => c.textContent === 'Grace Hopper'));
    const kept = await page.evaluate(() => sessionStorage.getItem('duality.token'));
    if (kept !== token) fail('the token is not kept for the tab');
  } else {
    await page.goto(`${base}/`, { waitUntil: 'load' });
    await waitFor(page, 'the page asks for a token to read', formShown, 'needs a token to show');
    await enterToken(page, token);
    await waitFor(page, 'all panels live with the read token', panelsIn, { views: VIEWS, state: 'live' });
    const response = await fetch(`${base}/persons`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${writeToken}` },
      body: JSON.stringify({ name: 'Ada', city: 'London' }),
    });
    if (response.status !== 201) fail(`POST /persons answered ${response.status}`);
    const { id } = await response.json();
    await waitFor(page, 'the new person streamed in', personRow, { id: String(id), name: 'Ada', city: 'London' });
  }
  const left = unexpected(errors);
  if (left.length) fail(`errors in the page:\n  ${left.join('\n  ')}`);
});
