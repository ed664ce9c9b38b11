// refbus console: the pages that act (consent, referral, open, referral states, handoff,
// deletion request and status report, revoke, close). Each posts to the agent's existing
// API routes (agent/API.md) through RefbusApp.api, which adds the CSRF header. Values the
// operator cannot type wrongly are picked from lists (legal bases, purposes, categories,
// recipients from GET /v1/directory and the consent's own scope); CSV input is checked here
// line by line before anything is sent, and the API checks everything again.
'use strict';
(function () {
  var T = window.RefbusText;
  var A = window.RefbusApp;
  var t = A.t, tn = A.tn;

  var BASES = ['consent-subject', 'consent-legal-representative', 'statutory-provision',
    'mandatory-report', 'police-notify-support-center', 'deletion-support',
    'police-deletion-request', 'investigation-request', 'court-order', 'emergency-life-safety'];
  var CONSENTERS = ['subject', 'guardian', 'legal-representative'];
  var PURPOSES = ['counseling', 'deletion', 'investigation', 'legal', 'psychological', 'family',
    'emergency', 'academic', 'linkage'];
  var CATEGORIES = ['identity', 'contact', 'incident-summary', 'counseling-notes',
    'content-locations', 'investigation', 'health', 'deletion-status', 'case-status'];
  var STATES = ['accepted', 'declined', 'in-progress', 'on-hold', 'completed', 'cancelled', 'withdrawn'];
  var ITEM_STATES = ['received', 'notified', 'removed', 'reappeared', 'withdrawn'];
  var REVOKE_REASONS = ['withdrawn-by-guardian', 'withdrawn-by-subject', 'withdrawn-by-representative',
    'recorded-in-error', 'basis-ended'];

  // A result to show on the page a form reloads (the reload clears the status line).
  var note = '';
  function showNote() {
    if (note) A.showStatus(note, false);
    note = '';
  }

  function named(prefix, names) { return names.map(function (n) { return [n, tn(prefix, n)]; }); }

  function form(page, id) {
    var f = page.appendChild(T.el('form'));
    f.id = id;
    f.noValidate = true;
    return f;
  }

  // Shows the API's answer: ok() on success, else the error in the status line.
  function posted(r, ok) {
    if (r.ok) return ok(r.body);
    A.showStatus(A.errorText(r) + (r.status === 403 || r.status === 409 ? ' ' + t('form.nothing_sent') : ''), true);
  }

  // Loads the directory: {id: agency}.
  function directory() {
    return A.api('GET', '/v1/directory').then(function (r) {
      var by = {};
      (r.ok && Array.isArray(r.body) ? r.body : []).forEach(function (a) { by[a.id] = a; });
      return by;
    });
  }
  function agencyText(dir, id) { return dir[id] ? dir[id].display_name + ' (' + id + ')' : id; }

  // The consents recorded here or received, usable (not revoked).
  function grants() {
    return A.api('GET', '/v1/consents').then(function (r) {
      return (r.ok && Array.isArray(r.body) ? r.body : []).filter(function (g) { return !g.revoked; });
    });
  }

  // A grant picker and a recipient picker that follows it.
  function grantPickers(f, list, dir, selected, onChange) {
    var g = T.select(f, 'grant', t('form.grant'), list.map(function (x) {
      return [x.grant_id, x.case_ref + ' · ' + tn('basis', x.basis) + ' · ' + x.grant_id.substring(0, 8)];
    }));
    if (selected) g.value = selected;
    var to = T.select(f, 'to', t('form.to'), []);
    function sync() {
      var cur = list.filter(function (x) { return x.grant_id === g.value; })[0] || {};
      T.setOptions(to, (cur.recipients || []).map(function (id) { return [id, agencyText(dir, id)]; }));
      if (onChange) onChange(cur);
    }
    g.addEventListener('change', sync);
    return { grant: g, to: to, sync: sync, current: function () {
      return list.filter(function (x) { return x.grant_id === g.value; })[0] || {};
    } };
  }

  // ---- record a consent

  function recipientPicker(f, dir) {
    var agencies = Object.keys(dir).map(function (id) { return dir[id]; });
    var uniq = function (k) { return agencies.map(function (a) { return a[k]; }).filter(function (v, i, all) { return all.indexOf(v) === i; }).sort(); };
    var type = T.select(f, 'recipient-type', t('consent.filter_type'),
        [['', t('consent.all')]].concat(uniq('agency_type').map(function (v) { return [v, tn('type', v)]; })));
    var region = T.select(f, 'recipient-region', t('consent.filter_region'),
        [['', t('consent.all')]].concat(uniq('region').map(function (v) { return [v, v]; })));
    var box = T.checks(f, 'recipient', t('consent.recipients'), agencies.map(function (a) {
      return [a.id, a.display_name + ' (' + tn('type', a.agency_type) + ', ' + a.region + ')'];
    }));
    function filter() {
      Array.prototype.forEach.call(box.querySelectorAll('div'), function (d, i) {
        var a = agencies[i];
        d.hidden = (type.value && a.agency_type !== type.value) || (region.value && a.region !== region.value);
      });
    }
    type.addEventListener('change', filter);
    region.addEventListener('change', filter);
    return box;
  }

  function consentPage() {
    var page = A.startPage('consent.title');
    directory().then(function (dir) {
      var f = form(page, 'consent-form');
      var local = T.input(f, 'local-case', t('consent.local_case'));
      var basis = T.select(f, 'basis', t('consent.basis'), named('basis', BASES));
      basis.value = 'consent-legal-representative';
      var consenters = T.checks(f, 'consenter', t('consent.consenters'), named('consenter', CONSENTERS));
      var assent = T.checks(f, 'assent', t('consent.assent_legend'), [['yes', t('consent.assent')]]);
      var purposes = T.checks(f, 'purpose', t('consent.purposes'), named('purpose', PURPOSES));
      var categories = T.checks(f, 'category', t('consent.categories'), named('category', CATEGORIES));
      var recipients = recipientPicker(f, dir);
      var days = T.input(f, 'valid-days', t('consent.valid_days'), 'number');
      days.value = '90';
      days.min = '1';
      T.submit(f, t('consent.submit'));
      f.addEventListener('submit', function (ev) {
        ev.preventDefault();
        var body = {
          basis: basis.value, consenters: T.checkedValues(consenters),
          subject_assent: T.checkedValues(assent).length > 0, purposes: T.checkedValues(purposes),
          categories: T.checkedValues(categories), recipients: T.checkedValues(recipients),
          recipient_types: [], onward_sharing: false, emergency_override: false,
          valid_days: parseInt(days.value, 10) || 90
        };
        if (local.value.trim()) body.local_case = local.value.trim();
        if (!body.purposes.length || !body.categories.length || !body.recipients.length) {
          A.showStatus(t('consent.incomplete'), true);
          return;
        }
        A.api('POST', '/v1/consents', body).then(function (r) {
          posted(r, function (b) {
            if (b.override_id) { A.showStatus(t('consent.awaiting_supervisor'), false); return; }
            A.showStatus(t('consent.recorded') + ' ' + b.grant_id, false);
            var p = page.appendChild(T.el('p'));
            var a = p.appendChild(T.el('a', t('consent.send_referral')));
            a.href = '#/referral-new/' + encodeURIComponent(b.grant_id);
            a.id = 'consent-next';
            p.appendChild(document.createTextNode(' '));
            p.appendChild(A.caseLink(b.case_ref));
          });
        });
      });
    });
  }

  // ---- send a referral

  function fieldRow(box, n, categories) {
    var row = box.appendChild(T.el('div'));
    row.className = 'field-row';
    // Numbered labels: a screen reader tells the rows apart.
    var k = ' ' + (n + 1);
    T.select(row, 'field-category-' + n, t('referral.field_category') + k, named('category', categories));
    T.input(row, 'field-name-' + n, t('referral.field_name') + k);
    T.input(row, 'field-value-' + n, t('referral.field_value') + k);
  }

  function referralPage(grantId) {
    var page = A.startPage('referral.title');
    Promise.all([grants(), directory()]).then(function (got) {
      var list = got[0], dir = got[1];
      if (!list.length) { A.showStatus(t('form.no_consent'), true); return; }
      var f = form(page, 'referral-form');
      var box;
      var pick = grantPickers(f, list, dir, grantId, function (g) {
        T.setOptions(purpose, named('purpose', g.purposes || []));
        T.setText(scope, t('referral.scope') + ' ' + (g.categories || []).map(function (c) { return tn('category', c); }).join(', '));
      });
      var purpose = T.select(f, 'purpose', t('referral.purpose'), []);
      var scope = f.appendChild(T.el('p'));
      scope.id = 'referral-scope';
      box = f.appendChild(T.el('fieldset'));
      box.appendChild(T.el('legend', t('referral.fields')));
      var rows = 0;
      var more = function () { fieldRow(box, rows++, CATEGORIES); };
      more();
      more();
      T.button(f, t('referral.add_field'), more);
      pick.sync();
      T.submit(f, t('referral.submit'));
      f.addEventListener('submit', function (ev) {
        ev.preventDefault();
        var g = pick.current();
        var fields = [], outside = [];
        for (var i = 0; i < rows; i++) {
          var name = document.getElementById('field-name-' + i).value.trim();
          var value = document.getElementById('field-value-' + i).value;
          var cat = document.getElementById('field-category-' + i).value;
          if (!name && !value) continue;
          if ((g.categories || []).indexOf(cat) < 0) outside.push(tn('category', cat));
          fields.push({ category: cat, name: name, value: value });
        }
        // The consent check, explained before anything is sealed (the API checks again).
        if (outside.length) {
          A.showStatus(t('referral.outside_consent') + ' ' + outside.join(', ') + '. ' + t('form.nothing_sent'), true);
          return;
        }
        if (!fields.length) { A.showStatus(t('referral.no_fields'), true); return; }
        A.api('POST', '/v1/referrals', { grant_id: g.grant_id, to: pick.to.value, purpose: purpose.value, fields: fields })
            .then(function (r) {
              posted(r, function (b) { A.showStatus(t('referral.sent') + ' ' + b.referral_id, false); });
            });
      });
    });
  }

  // ---- open a message (recorded; the sender is told)

  function showContent(page, b) {
    var c = b.content || {};
    var dl = page.appendChild(T.el('dl'));
    [['open.from', b.from], ['inbox.kind', tn('kind', b.kind)], ['case.ref', b.case_ref],
      ['open.sender_operator', c.operator || ''], ['referral.purpose', c.purpose ? tn('purpose', c.purpose) : ''],
      ['open.reason', c.reason || '']].forEach(function (p) {
      if (!p[1]) return;
      dl.appendChild(T.el('dt', t(p[0])));
      dl.appendChild(T.el('dd', p[1]));
    });
    var rows = (c.fields || []).map(function (x) { return [tn('category', x.category), x.name, x.value]; });
    if (c.items) rows = c.items.map(function (x) { return [x.item_id, x.url, x.platform]; });
    if (rows.length) {
      page.appendChild(T.table(t('open.content'), c.items ? [t('deletion.item'), t('deletion.url'), t('deletion.platform')]
          : [t('referral.field_category'), t('referral.field_name'), t('referral.field_value')], rows));
    }
    var next = page.appendChild(T.el('p'));
    var a;
    if (c.referral_id) { a = T.el('a', t('open.answer_referral')); a.href = '#/referrals'; }
    if (c.handoff_id) { a = T.el('a', t('open.answer_handoff')); a.href = '#/handoff/' + encodeURIComponent(c.handoff_id); }
    if (c.request_id) { a = T.el('a', t('open.report_deletion')); a.href = '#/deletions'; }
    if (a) { a.id = 'open-next'; next.appendChild(a); }
  }

  function openPage(messageId) {
    var page = A.startPage('open.title');
    var warn = page.appendChild(T.el('p', t('open.warning')));
    warn.className = 'warning';
    warn.id = 'open-warning';
    var f = form(page, 'open-form');
    T.submit(f, t('open.confirm'));
    var back = f.appendChild(T.el('a', t('open.cancel')));
    back.href = '#/inbox';
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.api('POST', '/v1/messages/' + encodeURIComponent(messageId) + '/open', {}).then(function (r) {
        posted(r, function (b) {
          f.remove();
          warn.remove();
          A.showStatus(t('open.recorded'), false);
          showContent(page, b);
        });
      });
    });
  }

  // ---- referrals and their states

  function stateForm(cell, r) {
    var f = form(cell, 'state-form-' + r.referral_id);
    var s = T.select(f, 'state-' + r.referral_id, t('referrals.new_state'), named('state', STATES));
    var reason = T.input(f, 'reason-' + r.referral_id, t('referrals.reason'));
    T.submit(f, t('referrals.change'));
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var body = { state: s.value };
      if (reason.value.trim()) body.reason = reason.value.trim();
      A.api('POST', '/v1/referrals/' + encodeURIComponent(r.referral_id) + '/state', body).then(function (x) {
        posted(x, function (b) { note = t('referrals.changed') + ' ' + tn('state', b.state); referralsPage(); });
      });
    });
    return f;
  }

  function referralsPage() {
    var page = A.startPage('referrals.title');
    A.api('GET', '/v1/referrals').then(function (r) {
      if (!r.ok) { A.showStatus(A.errorText(r), true); return; }
      var rows = (Array.isArray(r.body) ? r.body : []).map(function (x) {
        var cell = T.el('div');
        stateForm(cell, x);
        return [T.formatKst(x.updated_at_ms), A.caseLink(x.case_ref), tn('side', x.side), x.peer,
          tn('purpose', x.purpose), tn('state', x.state), cell];
      });
      page.appendChild(T.table(t('referrals.caption'), [t('case.at'), t('inbox.case'), t('referrals.side'),
        t('referrals.peer'), t('referral.purpose'), t('referrals.state'), t('inbox.action')], rows));
      if (!rows.length) A.showStatus(t('referrals.empty'), false);
      showNote();
    });
  }

  // ---- hand off a case, and answer a handoff

  function handoffNewPage() {
    var page = A.startPage('handoff.title');
    Promise.all([grants(), directory()]).then(function (got) {
      if (!got[0].length) { A.showStatus(t('form.no_consent'), true); return; }
      var f = form(page, 'handoff-form');
      var pick = grantPickers(f, got[0], got[1]);
      var reason = T.input(f, 'handoff-reason', t('handoff.reason'));
      pick.sync();
      T.submit(f, t('handoff.submit'));
      f.addEventListener('submit', function (ev) {
        ev.preventDefault();
        A.api('POST', '/v1/handoffs', { grant_id: pick.grant.value, to: pick.to.value, reason: reason.value, fields: [] })
            .then(function (r) { posted(r, function (b) { A.showStatus(t('handoff.sent') + ' ' + b.handoff_id, false); }); });
      });
    });
  }

  function handoffAnswerPage(id) {
    var page = A.startPage('handoff.answer_title');
    var f = form(page, 'handoff-answer-form');
    var reason = T.input(f, 'handoff-answer-reason', t('handoff.answer_reason'));
    function answer(accepted) {
      var body = { accepted: accepted };
      if (reason.value.trim()) body.reason = reason.value.trim();
      A.api('POST', '/v1/handoffs/' + encodeURIComponent(id) + '/ack', body).then(function (r) {
        posted(r, function (b) { A.showStatus(t(accepted ? 'handoff.accepted' : 'handoff.refused') + ' ' + b.lead, false); });
      });
    }
    var yes = T.submit(f, t('handoff.accept'));
    yes.id = 'handoff-accept';
    T.button(f, t('handoff.refuse'), function () { answer(false); });
    f.addEventListener('submit', function (ev) { ev.preventDefault(); answer(true); });
  }

  // ---- deletion: request (CSV url,sha256,platform) and status reports (CSV item_id,status)

  // A textarea for CSV and a file input that fills it.
  function csvInput(f, id, label) {
    var area = T.textarea(f, id, label);
    var file = T.input(f, id + '-file', t('deletion.upload'), 'file');
    file.accept = '.csv,text/csv,text/plain';
    file.addEventListener('change', function () {
      if (file.files.length) file.files[0].text().then(function (s) { area.value = s; });
    });
    return area;
  }

  function showCsvErrors(errors) {
    A.showStatus(t('deletion.csv_errors') + ' ' + errors.map(function (e) {
      return t('deletion.line') + ' ' + e[0] + ': ' + t('deletion.error.' + e[1]);
    }).join('; ') + '. ' + t('form.nothing_sent'), true);
  }

  function deletionItems(text) {
    var p = T.parseCsv(text, 3, 'url,sha256,platform');
    var items = p.rows.map(function (row) {
      var c = row.cells;
      if (!/^https?:\/\/\S+$/.test(c[0])) p.errors.push([row.line, 'url']);
      if (c[1] && !/^[0-9a-fA-F]{64}$/.test(c[1])) p.errors.push([row.line, 'sha256']);
      var item = { item_id: 'item-' + row.line, url: c[0], platform: c[2] };
      if (c[1]) item.sha256 = c[1].toLowerCase();
      return item;
    });
    if (!items.length && !p.errors.length) p.errors.push([1, 'empty']);
    p.errors.sort(function (a, b) { return a[0] - b[0]; });
    return { items: items, errors: p.errors };
  }

  function deletionNewPage() {
    var page = A.startPage('deletion.title');
    Promise.all([grants(), directory()]).then(function (got) {
      if (!got[0].length) { A.showStatus(t('form.no_consent'), true); return; }
      var f = form(page, 'deletion-form');
      var pick = grantPickers(f, got[0], got[1]);
      pick.sync();
      var csv = csvInput(f, 'deletion-csv', t('deletion.csv'));
      var monitor = T.checks(f, 'monitor', t('deletion.monitor_legend'), [['yes', t('deletion.monitor')]]);
      T.submit(f, t('deletion.submit'));
      f.addEventListener('submit', function (ev) {
        ev.preventDefault();
        var parsed = deletionItems(csv.value);
        if (parsed.errors.length) { showCsvErrors(parsed.errors); return; }
        A.api('POST', '/v1/deletions', { grant_id: pick.grant.value, to: pick.to.value, items: parsed.items,
          report_to: [], monitor: T.checkedValues(monitor).length > 0 }).then(function (r) {
          posted(r, function (b) { A.showStatus(t('deletion.sent') + ' ' + b.request_id + ' (' + parsed.items.length + ')', false); });
        });
      });
    });
  }

  function statusForm(cell, d) {
    var f = form(cell, 'status-form-' + d.request_id);
    var csv = csvInput(f, 'status-csv-' + d.request_id, t('deletion.status_csv'));
    T.submit(f, t('deletion.report'));
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var p = T.parseCsv(csv.value, 2, 'item_id,status');
      var updates = p.rows.map(function (row) {
        if (!Object.prototype.hasOwnProperty.call(d.items || {}, row.cells[0])) p.errors.push([row.line, 'item']);
        if (ITEM_STATES.indexOf(row.cells[1]) < 0) p.errors.push([row.line, 'status']);
        return { item_id: row.cells[0], status: row.cells[1] };
      });
      if (!updates.length && !p.errors.length) p.errors.push([1, 'empty']);
      p.errors.sort(function (a, b) { return a[0] - b[0]; });
      if (p.errors.length) { showCsvErrors(p.errors); return; }
      A.api('POST', '/v1/deletions/' + encodeURIComponent(d.request_id) + '/status', { updates: updates }).then(function (r) {
        posted(r, function (b) { note = t('deletion.reported') + ' ' + b.report_seq; deletionsPage(); });
      });
    });
  }

  function countsText(c) {
    if (!c) return '';
    return ITEM_STATES.map(function (s) { return tn('item', s) + ' ' + (c[s] || 0); }).join(', ');
  }

  function deletionsPage() {
    var page = A.startPage('deletions.title');
    A.api('GET', '/v1/deletions').then(function (r) {
      if (!r.ok) { A.showStatus(A.errorText(r), true); return; }
      var list = Array.isArray(r.body) ? r.body : [];
      var rows = list.map(function (d) {
        return [A.caseLink(d.case_ref), tn('side', d.side), d.peer, String(Object.keys(d.items || {}).length),
          countsText(d.counts)];
      });
      page.appendChild(T.table(t('deletions.caption'), [t('inbox.case'), t('referrals.side'), t('referrals.peer'),
        t('deletions.items'), t('deletions.counts')], rows));
      // A status report form under the table for each request this agency deletes for.
      list.forEach(function (d) {
        if (d.side !== 'deletion-center') return;
        var sec = page.appendChild(T.el('section'));
        sec.appendChild(T.el('h2', t('deletion.report') + ': ' + d.case_ref + ' (' + d.peer + ')'));
        statusForm(sec, d);
      });
      if (!rows.length) A.showStatus(t('deletions.empty'), false);
      showNote();
    });
  }

  // ---- revoke a consent, close a case

  function revokePage(grantId) {
    var page = A.startPage('revoke.title');
    page.appendChild(T.el('p', t('revoke.explain')));
    var f = form(page, 'revoke-form');
    var reason = T.select(f, 'revoke-reason', t('revoke.reason'), named('revocation', REVOKE_REASONS));
    T.submit(f, t('revoke.submit'));
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.api('POST', '/v1/consents/' + encodeURIComponent(grantId) + '/revoke', { reason: reason.value }).then(function (r) {
        posted(r, function (b) { A.showStatus(t('revoke.done') + ' ' + (b.notified || []).join(', '), false); });
      });
    });
  }

  function closePage(caseRef) {
    var page = A.startPage('close.title');
    var f = form(page, 'close-form');
    var reason = T.input(f, 'close-reason', t('close.reason'));
    T.submit(f, t('close.submit'));
    f.addEventListener('submit', function (ev) {
      ev.preventDefault();
      A.api('POST', '/v1/cases/' + encodeURIComponent(caseRef) + '/close', { reason: reason.value }).then(function (r) {
        posted(r, function (b) { A.showStatus(t('close.done') + ' ' + (b.notified || []).join(', '), false); });
      });
    });
  }

  // ---- emergency overrides: a caseworker's request, a different supervisor's approval

  function overridesPage() {
    var page = A.startPage('overrides.title');
    page.appendChild(T.el('p', t('overrides.explain')));
    A.api('GET', '/v1/overrides').then(function (r) {
      if (!r.ok) { A.showStatus(A.errorText(r), true); return; }
      var rows = (Array.isArray(r.body) ? r.body : []).map(function (o) {
        var f = form(T.el('div'), 'approve-' + o.override_id);
        T.submit(f, t('overrides.approve'));
        f.addEventListener('submit', function (ev) {
          ev.preventDefault();
          A.api('POST', '/v1/overrides/' + encodeURIComponent(o.override_id) + '/approve', {}).then(function (x) {
            posted(x, function (b) { note = t('overrides.approved') + ' ' + b.grant_id; overridesPage(); });
          });
        });
        return [T.formatKst(o.requested_at_ms), A.caseLink(o.case_ref), tn('basis', o.basis), o.requested_by,
          T.formatKst(o.expires_at_ms), f];
      });
      page.appendChild(T.table(t('overrides.caption'), [t('overrides.requested_at'), t('inbox.case'),
        t('consent.basis'), t('overrides.requested_by'), t('overrides.expires'), t('inbox.action')], rows));
      if (!rows.length && !note) A.showStatus(t('overrides.empty'), false);
      showNote();
    });
  }

  A.routes.push(['#/overrides', overridesPage], ['#/consent', consentPage], ['#/referral-new/', referralPage], ['#/referral-new', referralPage],
      ['#/referrals', referralsPage], ['#/open/', openPage], ['#/handoff-new', handoffNewPage],
      ['#/handoff/', handoffAnswerPage], ['#/deletion-new', deletionNewPage], ['#/deletions', deletionsPage],
      ['#/revoke/', revokePage], ['#/close/', closePage]);
})();
