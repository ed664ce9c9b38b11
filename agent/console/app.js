// refbus console: the pages (login, inbox, case, directory), routed by the URL's hash.
// Every visible string comes from the catalog (i18n/ko.json, i18n/en.json); everything the
// API returns is shown through RefbusText (text, never markup). Requests go to this
// agent's own API, same origin; the session (POST /v1/login, operator accounts) is a
// same-site cookie the browser sends by itself.
'use strict';
(function () {
  var T = window.RefbusText;
  var catalog = {};
  var lang = 'ko';
  var pollTimer = null;

  function t(key) { return Object.prototype.hasOwnProperty.call(catalog, key) ? catalog[key] : key; }
  function byId(id) { return document.getElementById(id); }

  function storedLang() {
    try { return window.localStorage.getItem('refbus.lang') === 'en' ? 'en' : 'ko'; } catch (e) { return 'ko'; }
  }

  function loadCatalog(l) {
    return fetch('/console/i18n/' + l + '.json', { credentials: 'same-origin' })
        .then(function (r) { return r.json(); })
        .then(function (c) { catalog = c; lang = l; document.documentElement.lang = l; });
  }

  // The API's reply as {ok, status, body}; a network failure is a reply with status 0.
  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', headers: { 'Accept': 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (b) {
        return { ok: r.ok, status: r.status, body: b };
      });
    }, function () { return { ok: false, status: 0, body: null }; });
  }

  // An error reply in the operator's language, with the API's own message after it.
  function errorText(reply) {
    if (reply.status === 0) return t('error.unreachable');
    var code = reply.body && reply.body.error ? reply.body.error.code : '';
    var key = reply.status === 401 ? 'error.login_required' : 'error.' + code;
    var text = t(key) === key ? t('error.failed') : t(key);
    var message = reply.body && reply.body.error ? reply.body.error.message : '';
    return message ? text + ' (' + message + ')' : text;
  }

  function showStatus(text, isError) {
    var s = T.setText(byId('status'), text);
    s.className = isError ? 'error' : 'muted';
  }

  function startPage(titleKey) {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    T.setText(byId('page-title'), t(titleKey));
    document.title = t(titleKey) + ' - ' + t('app.title');
    showStatus('', false);
    var page = byId('page');
    page.replaceChildren();
    return page;
  }

  function field(form, id, labelKey, type, autocomplete) {
    var label = T.el('label', t(labelKey));
    label.htmlFor = id;
    var input = T.el('input');
    input.id = id;
    input.name = id;
    input.type = type;
    input.required = true;
    input.autocomplete = autocomplete;
    form.appendChild(label);
    form.appendChild(input);
    return input;
  }

  function loginPage() {
    var page = startPage('login.title');
    var form = page.appendChild(T.el('form'));
    form.id = 'login-form';
    var op = field(form, 'operator', 'login.operator', 'text', 'username');
    var pw = field(form, 'password', 'login.password', 'password', 'current-password');
    var submit = form.appendChild(T.el('button', t('login.submit')));
    submit.type = 'submit';
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      api('POST', '/v1/login', { operator: op.value, password: pw.value }).then(function (r) {
        pw.value = '';
        if (r.ok) { window.location.hash = '#/inbox'; return; }
        showStatus(errorText(r), true);
      });
    });
  }

  function caseLink(ref) {
    var a = T.el('a', ref);
    a.href = '#/case/' + encodeURIComponent(ref);
    return a;
  }

  function renderInbox(page, r) {
    if (!r.ok) { showStatus(errorText(r), true); return; }
    var rows = (Array.isArray(r.body) ? r.body : []).map(function (m) {
      return [T.formatKst(m.received_at_ms), m.from, m.kind, caseLink(m.case_ref || ''),
        t('inbox.status.' + m.status), m.opened ? t('common.yes') : t('common.no')];
    });
    page.replaceChildren(T.table(t('inbox.caption'), [t('inbox.received'), t('inbox.from'),
      t('inbox.kind'), t('inbox.case'), t('inbox.status'), t('inbox.opened')], rows));
    showStatus(rows.length ? '' : t('inbox.empty'), false);
  }

  function inboxPage() {
    var page = startPage('inbox.title');
    var refresh = function () { api('GET', '/v1/inbox').then(function (r) { renderInbox(page, r); }); };
    refresh();
    pollTimer = setInterval(refresh, 5000);  // live updates: new messages within 5 s
  }

  function casePage(ref) {
    var page = startPage('case.title');
    api('GET', '/v1/cases/' + encodeURIComponent(ref)).then(function (r) {
      if (!r.ok) { showStatus(errorText(r), true); return; }
      var c = r.body || {};
      var dl = page.appendChild(T.el('dl'));
      [['case.ref', c.case_ref], ['case.local', c.local_case], ['case.lead', c.lead],
        ['case.closed', c.closed ? t('common.yes') : t('common.no')]].forEach(function (p) {
        dl.appendChild(T.el('dt', t(p[0])));
        dl.appendChild(T.el('dd', p[1]));
      });
      var rows = (Array.isArray(c.timeline) ? c.timeline : []).map(function (e) {
        var to = Array.isArray(e.to) ? e.to.join(', ') : e.to;
        return [T.formatKst(e.at_ms), t('event.' + e.event) === 'event.' + e.event ? e.event : t('event.' + e.event),
          e.from || '', to || '', e.by || '', e.state || e.purpose || ''];
      });
      page.appendChild(T.table(t('case.timeline'), [t('case.at'), t('case.event'), t('case.from'),
        t('case.to'), t('case.by'), t('case.detail')], rows));
    });
  }

  function directoryPage() {
    var page = startPage('directory.title');
    api('GET', '/v1/directory').then(function (r) {
      if (!r.ok) { showStatus(errorText(r), true); return; }
      var groups = {};
      (Array.isArray(r.body) ? r.body : []).forEach(function (a) {
        var key = a.agency_type + '\u0000' + a.region;
        (groups[key] = groups[key] || []).push(a);
      });
      Object.keys(groups).sort().forEach(function (key) {
        var first = groups[key][0];
        var type = t('type.' + first.agency_type);
        var section = page.appendChild(T.el('section'));
        section.appendChild(T.el('h2', (type === 'type.' + first.agency_type ? first.agency_type : type) +
            ' · ' + first.region));
        var rows = groups[key].map(function (a) { return [a.display_name, a.id, t('party.' + a.status)]; });
        section.appendChild(T.table(t('directory.caption'), [t('directory.name'), t('directory.id'),
          t('directory.status')], rows));
      });
    });
  }

  function route() {
    var h = window.location.hash;
    if (h.indexOf('#/case/') === 0) return casePage(decodeURIComponent(h.substring(7)));
    if (h === '#/directory') return directoryPage();
    if (h === '#/login') return loginPage();
    return inboxPage();
  }

  function applyFrame() {
    T.setText(byId('skip-link'), t('nav.skip'));
    T.setText(byId('brand'), t('app.title'));
    byId('nav').setAttribute('aria-label', t('nav.label'));
    T.setText(byId('nav-inbox'), t('nav.inbox'));
    T.setText(byId('nav-directory'), t('nav.directory'));
    T.setText(byId('nav-login'), t('nav.login'));
    T.setText(byId('lang-label'), t('nav.language'));
    byId('lang').value = lang;
  }

  function start(l) {
    return loadCatalog(l).then(function () { applyFrame(); route(); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    byId('lang').addEventListener('change', function (ev) {
      var l = ev.target.value === 'en' ? 'en' : 'ko';
      try { window.localStorage.setItem('refbus.lang', l); } catch (e) { /* private mode */ }
      start(l);
    });
    window.addEventListener('hashchange', route);
    start(storedLang());
  });
})();
