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
  window.RefbusText = { el: el, setText: setText, formatKst: formatKst, table: table };
})();
