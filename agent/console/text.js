// refbus console helpers, shared by every page. Text that another agency wrote (names,
// reasons, field values) reaches the page only through these: they set textContent, so
// markup in it is shown, not parsed or run.
'use strict';
(function () {
  // Makes an element; text (optional) is set as text.
  function el(tag, text) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  // Replaces an element's content with text.
  function setText(e, text) {
    e.textContent = text === undefined || text === null ? '' : String(text);
    return e;
  }
  function pad(n) { return (n < 10 ? '0' : '') + n; }
  // Milliseconds since the epoch -> "2026-12-07 13:05 KST". Korea Standard Time is UTC+9
  // all year (no daylight saving since 1988), so a fixed offset is exact.
  function formatKst(ms) {
    if (typeof ms !== 'number' || !isFinite(ms) || ms <= 0) return '';
    var d = new Date(ms + 9 * 3600 * 1000);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) +
        ' ' + pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ' KST';
  }
  // A table: headers are catalog texts, rows are arrays of strings or elements.
  function table(caption, headers, rows) {
    var t = el('table');
    t.appendChild(el('caption', caption));
    var tr = el('tr');
    headers.forEach(function (h) {
      var th = el('th', h);
      th.setAttribute('scope', 'col');
      tr.appendChild(th);
    });
    t.appendChild(el('thead')).appendChild(tr);
    var body = t.appendChild(el('tbody'));
    rows.forEach(function (row) {
      var r = body.appendChild(el('tr'));
      row.forEach(function (cell) {
        var td = r.appendChild(el('td'));
        if (cell instanceof Node) td.appendChild(cell); else setText(td, cell);
      });
    });
    return t;
  }
  // Form controls, each with its label (for screen readers and the keyboard).
  function labelFor(parent, id, text) {
    var l = parent.appendChild(el('label', text));
    l.htmlFor = id;
    return l;
  }
  function input(parent, id, label, type) {
    labelFor(parent, id, label);
    var i = parent.appendChild(el('input'));
    i.id = id;
    i.name = id;
    i.type = type || 'text';
    return i;
  }
  function textarea(parent, id, label) {
    labelFor(parent, id, label);
    var a = parent.appendChild(el('textarea'));
    a.id = id;
    a.name = id;
    a.rows = 5;
    return a;
  }
  // options: [[value, text], ...]
  function select(parent, id, label, options) {
    labelFor(parent, id, label);
    var s = parent.appendChild(el('select'));
    s.id = id;
    s.name = id;
    setOptions(s, options);
    return s;
  }
  function setOptions(s, options) {
    s.replaceChildren();
    options.forEach(function (o) {
      var opt = s.appendChild(el('option', o[1]));
      opt.value = o[0];
    });
  }
  // A group of checkboxes under a legend; returns the fieldset. checkedValues() reads it.
  function checks(parent, name, legend, options) {
    var f = parent.appendChild(el('fieldset'));
    f.appendChild(el('legend', legend));
    f.dataset.name = name;
    setChecks(f, options);
    return f;
  }
  function setChecks(f, options) {
    var keep = checkedValues(f);
    Array.prototype.slice.call(f.querySelectorAll('div')).forEach(function (d) { d.remove(); });
    options.forEach(function (o, i) {
      var d = f.appendChild(el('div'));
      var c = d.appendChild(el('input'));
      c.type = 'checkbox';
      c.id = f.dataset.name + '-' + i;
      c.value = o[0];
      c.checked = keep.indexOf(o[0]) >= 0;
      labelFor(d, c.id, o[1]);
    });
  }
  function checkedValues(f) {
    return Array.prototype.map.call(f.querySelectorAll('input[type=checkbox]:checked'),
        function (c) { return c.value; });
  }
  function submit(form, text) {
    var b = form.appendChild(el('button', text));
    b.type = 'submit';
    return b;
  }
  function button(parent, text, onClick) {
    var b = parent.appendChild(el('button', text));
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }
  // CSV lines -> {rows: [[cell, ...], ...], errors: [[line, what], ...]}. Cells are split at
  // commas, trimmed; empty lines and lines starting with '#' are skipped. No quoting: the
  // columns (URLs, hex, names, ids) hold no commas. A first line equal to header is skipped.
  function parseCsv(text, columns, header) {
    var rows = [], errors = [];
    String(text).split(/\r?\n/).forEach(function (line, i) {
      var l = line.trim();
      if (!l || l.charAt(0) === '#') return;
      var cells = l.split(',').map(function (c) { return c.trim(); });
      if (i === 0 && cells.join(',') === header) return;
      if (cells.length !== columns) { errors.push([i + 1, 'columns']); return; }
      rows.push({ line: i + 1, cells: cells });
    });
    return { rows: rows, errors: errors };
  }
  window.RefbusText = {
    el: el, setText: setText, formatKst: formatKst, table: table, input: input, textarea: textarea,
    select: select, setOptions: setOptions, checks: checks, setChecks: setChecks,
    checkedValues: checkedValues, submit: submit, button: button, parseCsv: parseCsv
  };
})();
