// The persons panel of the page at `/`: the persons by id, with a form that
// adds or edits one (POST /persons, PATCH /persons/{id}) and a delete
// button per row (two clicks, no dialog). Registered by the persons
// service; drawn by the engine's page (its app.js documents `duality`).
// Every text lands in the DOM as a text node or textContent.
'use strict';

(() => {
  const { h, setText, flash, has, isObject, send } = window.duality;

  // The rows, by id, kept in id order; flashes what a patch changed.
  function renderPersons(panel, rows, model, changed) {
    const tbody = panel.querySelector('tbody');
    const ids = Object.keys(model).sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
    for (const [id, row] of rows) {
      if (!has(model, id)) {
        row.remove();
        rows.delete(id);
      }
    }
    for (const id of ids) {
      const person = isObject(model[id]) ? model[id] : Object.create(null);
      let row = rows.get(id);
      if (!row) {
        row = h('tr', { 'data-id': id },
          h('td', { class: 'num', 'data-field': 'id' }, id),
          h('td', { 'data-field': 'name' }),
          h('td', { 'data-field': 'city' }),
          h('td', { class: 'actions' },
            h('button', { type: 'button', class: 'link', 'data-action': 'edit' }, 'edit'),
            h('button', { type: 'button', class: 'link danger', 'data-action': 'delete' }, 'delete')));
        rows.set(id, row);
      }
      const [, nameCell, cityCell] = row.cells;
      const hasCity = typeof person.city === 'string';
      let touched = setText(nameCell, person.name);
      touched = setText(cityCell, hasCity ? person.city : '—') || touched;
      cityCell.classList.toggle('muted', !hasCity);
      tbody.append(row); // keeps the rows in id order
      if (changed && (touched || has(changed, id))) flash(row);
    }
    panel.querySelector('[data-role=empty]').hidden = ids.length > 0;
  }

  // The form and the row buttons: writes through the API, which the
  // stream then shows.
  function personForm(panel) {
    const form = panel.querySelector('#person-form');
    const status = form.querySelector('[data-role=form-status]');
    const submit = form.querySelector('[data-role=submit]');
    const cancel = form.querySelector('[data-role=cancel]');

    const say = (text, bad) => {
      setText(status, text);
      status.classList.toggle('bad', Boolean(bad));
    };
    const reset = () => {
      form.reset();
      form.elements.id.value = '';
      setText(submit, 'Add person');
      cancel.hidden = true;
    };

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const id = form.elements.id.value;
      const name = form.elements.name.value.trim();
      const city = form.elements.city.value.trim();
      if (!name) {
        say('A person needs a name.', true);
        return;
      }
      try {
        if (id) {
          const revision = await send('PATCH', `/persons/${encodeURIComponent(id)}`, { name, city: city || null });
          say(`Saved person ${id} (persons revision ${revision}).`);
        } else {
          const revision = await send('POST', '/persons', city ? { name, city } : { name });
          say(`Added ${name} (persons revision ${revision}).`);
        }
        reset();
      } catch (error) {
        say(error.message, true);
      }
    });

    cancel.addEventListener('click', () => {
      reset();
      say('');
    });

    panel.querySelector('tbody').addEventListener('click', async (event) => {
      const button = event.target.closest('button[data-action]');
      if (!button) return;
      const row = button.closest('tr');
      const id = row.dataset.id;
      if (button.dataset.action === 'edit') {
        form.elements.id.value = id;
        form.elements.name.value = row.cells[1].textContent;
        form.elements.city.value = row.cells[2].classList.contains('muted') ? '' : row.cells[2].textContent;
        setText(submit, `Save person ${id}`);
        cancel.hidden = false;
        form.elements.name.focus();
        say('');
      } else if (button.dataset.action === 'delete') {
        // Two clicks, no modal dialog: the first one arms the button.
        if (button.dataset.armed !== 'true') {
          button.dataset.armed = 'true';
          setText(button, 'sure?');
          setTimeout(() => {
            button.dataset.armed = 'false';
            setText(button, 'delete');
          }, 3000);
          return;
        }
        try {
          const revision = await send('DELETE', `/persons/${encodeURIComponent(id)}`);
          say(`Deleted person ${id} (persons revision ${revision}).`);
          if (form.elements.id.value === id) reset();
        } catch (error) {
          say(error.message, true);
        }
      }
    });
  }

  window.duality.panel({
    title: 'Persons',
    span: 6,
    mount(panel) {
      panel.append(
        h('form', { id: 'person-form', class: 'person-form', autocomplete: 'off' },
          h('input', { type: 'hidden', name: 'id' }),
          h('label', {}, 'Name ', h('input', { name: 'name', required: true, maxLength: 200, placeholder: 'Ada Lovelace' })),
          h('label', {}, 'City ', h('input', { name: 'city', maxLength: 200, placeholder: 'London (optional)' })),
          h('button', { type: 'submit', 'data-role': 'submit' }, 'Add person'),
          h('button', { type: 'button', 'data-role': 'cancel', class: 'secondary', hidden: true }, 'Cancel'),
          h('output', { 'data-role': 'form-status', class: 'form-status' })),
        h('div', { class: 'scroll' },
          h('table', { class: 'grid', id: 'persons-table' },
            h('thead', {}, h('tr', {},
              h('th', { class: 'num' }, 'ID'), h('th', {}, 'Name'), h('th', {}, 'City'),
              h('th', { class: 'actions' }, h('span', { class: 'sr' }, 'actions')))),
            h('tbody', {})),
          h('p', { class: 'empty', 'data-role': 'empty', hidden: true },
            'No persons yet. Add one above, or ', h('code', {}, 'POST /persons'), '.')));
      personForm(panel);
      const rows = new Map();
      return (model, changed) => renderPersons(panel, rows, model, changed);
    },
  });
})();
