// The dashboard panel of the page at `/`: the customer count, the top
// customers, the customers with most incidents and those with the highest
// incident volume, in words rather than the view's field names.
// Registered by the aggregates service; drawn by the engine's page (its
// app.js documents `duality`). Every text lands in the DOM as a text node
// or textContent.
'use strict';

(() => {
  const { h, setText, flash, has, isObject } = window.duality;

  const numbers = new Intl.NumberFormat('en', { maximumFractionDigits: 2, minimumFractionDigits: 2 });
  const integers = new Intl.NumberFormat('en');

  function list(model, key) {
    return Array.isArray(model[key]) ? model[key].filter(isObject) : [];
  }

  function fillList(node, items, changed) {
    node.replaceChildren(...items);
    if (!items.length) node.append(h('li', { class: 'empty' }, 'nothing yet'));
    if (changed) flash(node);
  }

  const card = (extra, title, note, ...content) =>
    h('section', { class: `card${extra ? ` ${extra}` : ''}` },
      h('h3', {}, title, note ? h('small', {}, note) : null), ...content);

  window.duality.panel({
    title: 'Dashboard',
    note: 'composed from the customers and incidents services',
    span: 10,
    mount(panel) {
      panel.classList.add('dashboard');
      const count = h('p', { class: 'big', id: 'customer-count' }, '–');
      const top = h('ol', { class: 'list', id: 'top-customers' });
      const most = h('ol', { class: 'list', id: 'most-incidents' });
      const volume = h('ol', { class: 'bars', id: 'incident-volume' });
      panel.append(h('div', { class: 'cards' },
        card('count', 'Customers', null, count, h('p', { class: 'hint' }, 'in the customers service')),
        card('', 'Top customers', 'by scoring', top),
        card('', 'Most incidents', 'by count', most),
        card('wide', 'Highest incident volume', 'sum of amounts', volume)));

      return (model, changed) => {
        const touched = (key) => changed && has(changed, key);
        setText(count, model.customerCount === undefined ? '–' : integers.format(Number(model.customerCount)));
        if (touched('customerCount')) flash(count);

        fillList(top,
          list(model, 'topCustomers').map((c) => h('li', {},
            h('span', { class: 'name' }, c.customerName),
            h('span', { class: 'pill', title: 'scoring, from 0 to 10' }, `score ${c.scoring}/10`))),
          touched('topCustomers'));

        fillList(most,
          list(model, 'customersWithMostIncidents').map((c) => h('li', {},
            h('span', { class: 'name' }, c.customerName),
            h('span', { class: 'pill' }, `${c.numberOfIncidents} incident${c.numberOfIncidents === 1 ? '' : 's'}`))),
          touched('customersWithMostIncidents'));

        const volumes = list(model, 'customersWithHighestIncidentVolume');
        const max = Math.max(1e-9, ...volumes.map((c) => Number(c.incidentVolume) || 0));
        fillList(volume,
          volumes.map((c) => {
            const fill = h('span', { class: 'fill' });
            fill.style.width = `${(100 * (Number(c.incidentVolume) || 0)) / max}%`;
            return h('li', {},
              h('span', { class: 'name' }, c.customerName),
              h('span', { class: 'track' }, fill),
              h('span', { class: 'value' }, numbers.format(Number(c.incidentVolume) || 0)));
          }),
          touched('customersWithHighestIncidentVolume'));
      };
    },
  });
})();
