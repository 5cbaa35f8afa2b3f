// The locations panel of the page at `/`: each city with its number of
// persons and a bar of its share. Registered by the persons service; drawn
// by the engine's page (its app.js documents `duality`). Every text lands
// in the DOM as a text node or textContent.
'use strict';

(() => {
  const { h, setText, flash, has, isObject } = window.duality;

  window.duality.panel({
    title: 'Locations',
    span: 4,
    mount(panel) {
      const tbody = h('tbody', {});
      const empty = h('p', { class: 'empty', 'data-role': 'empty', hidden: true },
        'No cities yet: a city appears when a person lives there.');
      panel.append(h('div', { class: 'scroll' },
        h('table', { class: 'grid', id: 'locations-table' },
          h('thead', {}, h('tr', {},
            h('th', {}, 'City'), h('th', { class: 'num' }, 'Persons'),
            h('th', { class: 'barcol' }, h('span', { class: 'sr' }, 'share')))),
          tbody),
        empty));
      const rows = new Map();

      return (model, changed) => {
        const cities = Object.keys(model).sort((a, b) => a.localeCompare(b));
        const totals = cities.map((c) => Number(isObject(model[c]) ? model[c].total : 0) || 0);
        const max = Math.max(1, ...totals);
        for (const [city, row] of rows) {
          if (!has(model, city)) {
            row.remove();
            rows.delete(city);
          }
        }
        cities.forEach((city, i) => {
          let row = rows.get(city);
          if (!row) {
            row = h('tr', { 'data-city': city },
              h('td', { 'data-field': 'city' }, city),
              h('td', { class: 'num', 'data-field': 'total' }),
              h('td', { class: 'barcol' }, h('span', { class: 'track' }, h('span', { class: 'fill' }))));
            rows.set(city, row);
          }
          setText(row.cells[1], totals[i]);
          row.querySelector('.fill').style.width = `${(100 * totals[i]) / max}%`;
          tbody.append(row);
          if (changed && has(changed, city)) flash(row);
        });
        empty.hidden = cities.length > 0;
      };
    },
  });
})();
