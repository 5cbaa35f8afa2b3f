// The API page at /docs: it lists the operations of /openapi.json, and a
// GET filled in and sent from the page shows the server's answer; a POST
// with a body it prefilled and edited creates what it says. With a token
// given, the server wants one for writes: the page shows a token field and
// a write sent with it is accepted.
//
//   node docs.mjs <base url> [<write token>]
//
// Exits 0 when every check passed; otherwise prints what failed and exits 1.

import { fail, log, withPage } from './lib.mjs';

const [base, token] = process.argv.slice(2);
if (!base) {
  console.error('usage: node docs.mjs <base url> [<write token>]');
  process.exit(2);
}

const WAIT = { timeout: 15_000, polling: 50 };

async function send(page, op) {
  await page.click('[data-role=send]');
  await page.waitForFunction(() => document.querySelector('[data-role=answer]')?.dataset.done === 'true', null, WAIT);
  const status = Number(await page.getAttribute('[data-role=status]', 'data-status'));
  log(`ok: ${op} sent from the page, answered ${status}`);
  return status;
}

await withPage(async (page, errors) => {
  await page.goto(`${base}/docs`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, WAIT);
  const listed = await page.$$eval('[data-op]', (ops) => ops.map((o) => o.dataset.op));
  const doc = await (await fetch(`${base}/openapi.json`)).json();
  const documented = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
  if (JSON.stringify([...listed].sort()) !== JSON.stringify([...documented].sort())) {
    fail(`the page lists ${JSON.stringify(listed)}, the document has ${JSON.stringify(documented)}`);
  }
  log(`ok: the page lists the ${listed.length} operations of the document`);
  const tokenShown = await page.isVisible('#api-token');
  if (tokenShown !== Boolean(token)) fail(`the token field is ${tokenShown ? 'shown' : 'hidden'}`);

  // A GET with a path parameter.
  const persons = await (await fetch(`${base}/persons`)).json();
  const id = Object.keys(persons)[0];
  if (!id) fail('the server has no person to read');
  await page.click('[data-op="GET /persons/{id}"]');
  const stray = await page.evaluate(() => [...document.getElementById('api-try').childNodes]
    .filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent));
  if (stray.length) fail(`stray text in the operation panel: ${JSON.stringify(stray)}`);
  await page.fill('[data-param=id]', id);
  const status = await send(page, `GET /persons/${id}`);
  if (status !== 200) fail(`GET /persons/${id} answered ${status} in the page`);
  const shown = JSON.parse(await page.textContent('[data-role=response]'));
  const expected = await (await fetch(`${base}/persons/${id}`)).json();
  if (JSON.stringify(shown) !== JSON.stringify(expected)) {
    fail(`the page shows ${JSON.stringify(shown)}, the server answers ${JSON.stringify(expected)}`);
  }
  const headers = await page.textContent('[data-role=headers]');
  if (!headers.includes('content-type: application/json')) fail(`headers shown: ${headers}`);
  log('ok: the answer body and headers are shown');

  // A stream: the page shows what came within its window, then stops.
  await page.click('[data-op="GET /person-events"]');
  await page.selectOption('[data-param=snapshot]', 'true');
  const streamed = await send(page, 'GET /person-events?snapshot=true');
  if (streamed !== 200) fail(`GET /person-events answered ${streamed} in the page`);
  const events = await page.textContent('[data-role=response]');
  if (!events.includes('event: snapshot')) fail(`the stream shows: ${events}`);
  log('ok: the first events of a stream are shown');

  // A POST with the body the page prefilled from the schema, edited.
  await page.click('[data-op="POST /persons"]');
  const prefilled = JSON.parse(await page.inputValue('[data-role=body-input]'));
  if (typeof prefilled.name !== 'string') fail(`the body starts as ${JSON.stringify(prefilled)}`);
  await page.fill('[data-role=body-input]', JSON.stringify({ name: 'Tried From Docs' }));
  if (token) await page.fill('#api-token input[name=token]', token);
  const created = await send(page, 'POST /persons');
  if (created !== 201) fail(`POST /persons answered ${created} in the page`);
  const after = await (await fetch(`${base}/persons`)).json();
  if (!Object.values(after).some((p) => p.name === 'Tried From Docs')) fail('the person was not created');
  log('ok: the write sent from the page was made');

  if (errors.length) fail(`errors in the page:\n  ${errors.join('\n  ')}`);
});
