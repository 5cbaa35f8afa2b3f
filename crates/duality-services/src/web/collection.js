// A collection's panel of the page at `/` (`--collection NAME`): each
// document by key, whole, as compact JSON (a collection's documents have no
// common shape to spread over columns). Registered by the collections
// service for every collection; drawn by the engine's page (its app.js
// documents `duality`). Every text lands in the DOM as a text node or
// textContent.
'use strict';

(() => {
  const { h, setText, flash, has } = window.duality;

  // The view `collections.NAME` is the collection NAME.
  const nameOf = (view) => view.name.replace(/^collections\./, '');

  window.duality.panel({
    title: (view) => `Collection ${nameOf(view)}`,
    span: 10,
    mount(panel, view) {
      panel.dataset.collection = nameOf(view);
      const tbody = h('tbody', {});
      const empty = h('p', { class: 'empty', 'data-role': 'empty', hidden: true },
        'No documents yet: PUT one at ', h('code', {}, `${view.snapshot}/items/{key}`), '.');
      panel.append(h('div', { class: 'scroll' },
        h('table', { class: 'grid' },
          h('thead', {}, h('tr', {}, h('th', {}, 'key'), h('th', {}, 'document'))),
          tbody),
        empty));
      const rows = new Map();

      return (model, changed) => {
        const keys = Object.keys(model).sort();
        for (const [key, row] of rows) {
          if (!has(model, key)) {
            row.remove();
            rows.delete(key);
          }
        }
        for (const key of keys) {
          let row = rows.get(key);
          if (!row) {
            row = h('tr', { 'data-key': key }, h('td', {}, key), h('td', { class: 'json' }));
            rows.set(key, row);
          }
          const touched = setText(row.cells[1], JSON.stringify(model[key]));
          tbody.append(row);
          if (changed && (touched || has(changed, key))) flash(row);
        }
        empty.hidden = keys.length > 0;
      };
    },
  });
})();
