// refbus console: the linkage page (issue 19, PROTOCOL.md 13.6-13.7). A caseworker enters
// an identifier a case holds (POST /v1/cases/{case}/links); the agent turns it into a
// pseudonym with the two evaluators and deposits it at the matching escrow, and never
// stores it. The page lists the agency's entries (GET /v1/links) and the escrow's match
// notices (GET /v1/linkage/matches), and for a match makes this agency's signed tally
// (POST /v1/linkage/{id}/tally) and, at the lead agency, the joint evidence bundle
// (POST /v1/linkage/{id}/bundle), offered as a file.
//
// The identifier value lives only in its input field until it is posted: it is never put
// in the location hash, in the browser's storage or in a log line, the field is not
// remembered by the browser's autofill, and it is cleared once the agent has taken it.
'use strict';
(function () {
  var T = window.RefbusText;
  var A = window.RefbusApp;
  var t = A.t, tn = A.tn;

  var KINDS = ['phone', 'account', 'email', 'url', 'content-sha256'];
  var PLATFORMS = ['instagram', 'x', 'facebook', 'tiktok', 'telegram', 'kakaotalk', 'line', 'discord',
    'youtube', 'snapchat', 'zepeto', 'naver', 'band', 'reddit', 'threads', 'wechat', 'whatsapp', 'signal'];
  var DATE = /^\d{4}-\d{2}-\d{2}$/;

  // "YYYY-MM-DD" (a day in Korea) -> ms of its start; '' -> 0; anything else -> -1.
  function kstDayMs(s) {
    if (!s) return 0;
    if (!DATE.test(s)) return -1;
    var ms = Date.UTC(+s.substring(0, 4), +s.substring(5, 7) - 1, +s.substring(8, 10)) - 9 * 3600 * 1000;
    return isFinite(ms) && ms > 0 ? ms : -1;
  }
  function kstDay(ms) { return T.formatKst(ms).substring(0, 10); }
  // '' -> undefined (left out); a whole number -> it; anything else -> -1.
  function count(s) {
    if (!s) return undefined;
    return /^\d{1,9}$/.test(s) ? parseInt(s, 10) : -1;
  }

  // The add-link refusal in words that say what to do next (the API's own message, which
  // names the kind and the rule but never the value, follows in parentheses).
  function linkError(r, kind) {
    var code = r.body && r.body.error ? r.body.error.code : '';
    var msg = r.body && r.body.error ? String(r.body.error.message || '') : '';
    var key = '';
    if (r.status === 400 && msg.indexOf('unknown platform') >= 0) key = 'linkage.err.platform';
    else if (r.status === 400 && msg.indexOf(kind + ' identifier:') === 0) key = 'linkage.err.' + kind;
    else if (r.status === 409 && msg.indexOf('purpose linkage') >= 0) key = 'linkage.err.no_grant';
    else if (r.status === 409 && msg.indexOf('linkage-escrow') >= 0) key = 'linkage.err.no_escrow';
    else if (code === 'resource-exhausted') key = 'linkage.err.quota';
    else if (code === 'unavailable') key = 'linkage.err.unavailable';
    else if (r.status === 401) key = 'linkage.err.proof';
    if (!key) return A.errorText(r);
    return t(key) + (msg ? ' (' + msg + ')' : '');
  }

  function hint(kind) { return t('linkage.hint.' + kind); }

  // ---- the form to enter an identifier for a case

  function caseOptions(grants, caseRef) {
    var refs = [];
    grants.forEach(function (g) {
      if (!g.revoked && (g.purposes || []).indexOf('linkage') >= 0 && refs.indexOf(g.case_ref) < 0) refs.push(g.case_ref);
    });
    if (caseRef && refs.indexOf(caseRef) < 0) refs.unshift(caseRef);
    return refs.map(function (r) { return [r, r]; });
  }

  function platformInput(f) {
    var wrap = f.appendChild(T.el('div'));
    wrap.className = 'field-row';
    var p = T.input(wrap, 'link-platform', t('linkage.platform'));
    p.autocomplete = 'off';
    var list = wrap.appendChild(T.el('datalist'));
    list.id = 'link-platforms';
    PLATFORMS.forEach(function (n) { list.appendChild(T.el('option')).value = n; });
    p.setAttribute('list', 'link-platforms');
    return { wrap: wrap, input: p };
  }

  function optionalFields(f) {
    var box = f.appendChild(T.el('fieldset'));
    box.appendChild(T.el('legend', t('linkage.optional')));
    var row = box.appendChild(T.el('div'));
    row.className = 'field-row';
    var first = T.input(row, 'link-first-seen', t('linkage.first_seen'));
    var last = T.input(row, 'link-last-seen', t('linkage.last_seen'));
    var victims = T.input(row, 'link-victims', t('linkage.victims'));
    var items = T.input(row, 'link-items', t('linkage.items'));
    [first, last].forEach(function (i) { i.placeholder = '2026-01-31'; i.autocomplete = 'off'; });
    [victims, items].forEach(function (i) { i.inputMode = 'numeric'; i.autocomplete = 'off'; });
    return { first: first, last: last, victims: victims, items: items };
  }

  // The body of POST /v1/cases/{case}/links, or a catalog key naming what is wrong.
  function linkBody(kind, value, platform, opt) {
    var v = value.trim();
    if (!v) return 'linkage.err.value_empty';
    if (kind === 'account' && !/^https?:\/\//i.test(v)) {
      if (!platform.trim()) return 'linkage.err.platform_empty';
      v = platform.trim() + ':' + v.replace(/^@/, '');
    }
    var body = { kind: kind, value: v };
    var first = kstDayMs(opt.first.value.trim()), last = kstDayMs(opt.last.value.trim());
    if (first < 0 || last < 0) return 'linkage.err.date';
    if (first) body.first_seen_ms = first;
    if (last) body.last_seen_ms = last + 24 * 3600 * 1000 - 1;
    var victims = count(opt.victims.value.trim()), items = count(opt.items.value.trim());
    if (victims === -1 || items === -1) return 'linkage.err.count';
    if (victims !== undefined) body.victims = victims;
    if (items !== undefined) body.items = items;
    return body;
  }

  function addForm(page, grants, caseRef, onAdded) {
    var sec = A.section(page, 'linkage.add_title');
    sec.appendChild(T.el('p', t('linkage.add_explain')));
    var f = sec.appendChild(T.el('form'));
    f.id = 'link-form';
    f.noValidate = true;
    var cases = caseOptions(grants, caseRef);
    var c = T.select(f, 'link-case', t('linkage.case'), cases);
    if (caseRef) c.value = caseRef;
    var kind = T.select(f, 'link-kind', t('linkage.kind'), KINDS.map(function (k) { return [k, tn('linkage.kind', k)]; }));
    var platform = platformInput(f);
    var value = T.input(f, 'link-value', t('linkage.value'));
    value.autocomplete = 'off';
    value.spellcheck = false;
    var help = f.appendChild(T.el('p'));
    help.id = 'link-hint';
    help.className = 'muted';
    value.setAttribute('aria-describedby', 'link-hint');
    var opt = optionalFields(f);
    function sync() {
      platform.wrap.hidden = kind.value !== 'account';
      T.setText(help, hint(kind.value));
    }
    kind.addEventListener('change', sync);
    sync();
    T.submit(f, t('linkage.add_submit'));
    if (!cases.length) A.showStatus(t('linkage.no_cases'), false);
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var body = linkBody(kind.value, value.value, platform.input.value, opt);
      if (typeof body === 'string') { A.showStatus(t(body) + ' ' + t('form.nothing_sent'), true); return; }
      if (!c.value) { A.showStatus(t('linkage.no_cases'), true); return; }
      A.api('POST', '/v1/cases/' + encodeURIComponent(c.value) + '/links', body).then(function (r) {
        body.value = '';
        if (!r.ok) { A.showStatus(linkError(r, kind.value) + ' ' + t('form.nothing_sent'), true); return; }
        value.value = '';
        A.showStatus(t('linkage.added') + ' ' + tn('linkage.kind', r.body.kind) + ' · ' + r.body.case_ref, false);
        onAdded();
      });
    });
  }

  // ---- the agency's entries and the match notices

  function linksTable(list) {
    var rows = list.map(function (l) {
      return [T.formatKst(l.added_at_ms), A.caseLink(l.case_ref), tn('linkage.kind', l.kind), l.operator || '',
        kstDay(l.expires_ms), t(l.withdrawn ? 'linkage.state.withdrawn' : 'linkage.state.held')];
    });
    return T.table(t('linkage.links_caption'), [t('linkage.added_at'), t('inbox.case'), t('linkage.kind'),
      t('case.by'), t('linkage.expires'), t('linkage.state')], rows);
  }

  function agencyName(dir, id) { return dir[id] ? dir[id].display_name + ' (' + id + ')' : id; }

  function othersText(dir, others) {
    return (others || []).map(function (o) {
      var when = [kstDay(o.first_seen_ms), kstDay(o.last_seen_ms)].filter(Boolean).join(' ~ ');
      return agencyName(dir, o.agency) + (when ? ': ' + when : '');
    }).join('; ');
  }

  function matchesTable(dir, list) {
    var rows = list.map(function (m) {
      return [T.formatKst(m.matched_at_ms || m.received_at_ms), A.caseLink(m.case_ref), tn('linkage.kind', m.kind),
        othersText(dir, m.others), m.linkage_id];
    });
    return T.table(t('linkage.matches_caption'), [t('linkage.matched_at'), t('inbox.case'), t('linkage.kind'),
      t('linkage.others'), t('linkage.id')], rows);
  }

  // ---- a match: this agency's tally, and the lead's bundle

  // A link that saves text as a file (made in the page: nothing goes through a URL).
  function download(parent, id, name, text, label) {
    var old = document.getElementById(id);
    if (old) { URL.revokeObjectURL(old.href); old.parentNode.remove(); }
    var p = parent.appendChild(T.el('p'));
    var a = p.appendChild(T.el('a', label));
    a.id = id;
    a.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    a.download = name;
    return a;
  }

  function tallyForm(sec, id) {
    var f = sec.appendChild(T.el('form'));
    f.id = 'tally-form-' + id;
    f.noValidate = true;
    var victims = T.input(f, 'tally-victims-' + id, t('linkage.tally_victims'));
    var items = T.input(f, 'tally-items-' + id, t('linkage.tally_items'));
    var from = T.input(f, 'tally-from-' + id, t('linkage.tally_from'));
    var to = T.input(f, 'tally-to-' + id, t('linkage.tally_to'));
    [victims, items].forEach(function (i) { i.inputMode = 'numeric'; });
    [from, to].forEach(function (i) { i.placeholder = '2026-01-31'; });
    [victims, items, from, to].forEach(function (i) { i.autocomplete = 'off'; });
    T.submit(f, t('linkage.tally_submit'));
    var out = sec.appendChild(T.el('div'));  // the evidence file's link, under its form
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var v = count(victims.value.trim()), n = count(items.value.trim());
      if (v === undefined || v < 0 || n === undefined || n < 0) { A.showStatus(t('linkage.err.count') + ' ' + t('form.nothing_sent'), true); return; }
      if (!DATE.test(from.value.trim()) || !DATE.test(to.value.trim())) { A.showStatus(t('linkage.err.date') + ' ' + t('form.nothing_sent'), true); return; }
      A.api('POST', '/v1/linkage/' + encodeURIComponent(id) + '/tally',
          { victims: v, deletion_items: n, from: from.value.trim(), to: to.value.trim() }).then(function (r) {
        if (!r.ok) { A.showStatus(A.errorText(r) + ' ' + t('form.nothing_sent'), true); return; }
        A.showStatus(t('linkage.tallied') + ' ' + r.body.broker_id + ' #' + r.body.index, false);
        download(out, 'tally-evidence-' + id, 'tally-' + id.substring(0, 8) + '-' + r.body.agency + '.json',
            r.body.evidence, t('linkage.evidence_download'));
      });
    });
  }

  function bundleForm(sec, id) {
    sec.appendChild(T.el('p', t('linkage.bundle_explain')));
    var f = sec.appendChild(T.el('form'));
    f.id = 'bundle-form-' + id;
    f.noValidate = true;
    var files = T.input(f, 'bundle-with-' + id, t('linkage.bundle_with'), 'file');
    files.multiple = true;
    files.accept = '.json,application/json,text/plain';
    T.submit(f, t('linkage.bundle_submit'));
    var out = sec.appendChild(T.el('div'));
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      Promise.all(Array.prototype.map.call(files.files, function (x) { return x.text(); })).then(function (texts) {
        return A.api('POST', '/v1/linkage/' + encodeURIComponent(id) + '/bundle', { with: texts });
      }).then(function (r) {
        if (!r.ok) { A.showStatus(A.errorText(r), true); return; }
        var n = Array.isArray(r.body.agencies) ? r.body.agencies.length : r.body.agencies;
        A.showStatus(t('linkage.bundled') + ' ' + n, false);
        download(out, 'bundle-download-' + id, 'linkage-' + id.substring(0, 8) + '-bundle.json', r.body.bundle,
            t('linkage.bundle_download')).focus();
      });
    });
  }

  function matchActions(box, seen, dir, list) {
    list.forEach(function (m) {
      if (seen[m.linkage_id]) return;
      seen[m.linkage_id] = true;
      var sec = box.appendChild(T.el('section'));
      sec.id = 'match-' + m.linkage_id;
      sec.appendChild(T.el('h3', t('linkage.match') + ' ' + m.linkage_id.substring(0, 8) + ' · ' + tn('linkage.kind', m.kind)));
      tallyForm(sec, m.linkage_id);
      bundleForm(sec, m.linkage_id);
    });
  }

  // Live like the inbox: entries and notices appear within 3 s. Tables are replaced only
  // when their data changed; a match's forms are made once, so what the operator types
  // stays put.
  function linkagePage(rest) {
    var page = A.startPage('linkage.title');
    var caseRef = rest.charAt(0) === '/' ? rest.substring(1) : '';
    page.appendChild(T.el('p', t('linkage.explain')));
    // Started now, not when the first replies are in: by then the operator may be on
    // another page, whose own timer this would replace.
    var refresh = function () {};
    A.poll(function () { refresh(); }, 3000);
    Promise.all([A.api('GET', '/v1/consents'), A.api('GET', '/v1/directory')]).then(function (got) {
      var grants = got[0].ok && Array.isArray(got[0].body) ? got[0].body : [];
      var dir = {};
      (got[1].ok && Array.isArray(got[1].body) ? got[1].body : []).forEach(function (a) { dir[a.id] = a; });
      var links = T.el('div'), matches = T.el('div'), actions = T.el('div');
      links.id = 'link-list';
      matches.id = 'match-list';
      var shown = { links: null, matches: null }, seen = {};
      refresh = function () {
        A.api('GET', '/v1/links').then(function (r) {
          var now = JSON.stringify(r.body);
          if (!r.ok || now === shown.links) return;
          shown.links = now;
          links.replaceChildren(linksTable(Array.isArray(r.body) ? r.body : []));
        });
        A.api('GET', '/v1/linkage/matches').then(function (r) {
          var now = JSON.stringify(r.body);
          if (!r.ok || now === shown.matches) return;
          shown.matches = now;
          var list = Array.isArray(r.body) ? r.body : [];
          matches.replaceChildren(matchesTable(dir, list));
          matchActions(actions, seen, dir, list);
        });
      };
      addForm(page, grants, caseRef, refresh);
      A.section(page, 'linkage.links_title').appendChild(links);
      var ms = A.section(page, 'linkage.matches_title');
      ms.appendChild(T.el('p', t('linkage.matches_explain')));
      ms.appendChild(matches);
      ms.appendChild(actions);
      refresh();
    });
  }

  A.routes.push(['#/linkage', linkagePage]);
})();
