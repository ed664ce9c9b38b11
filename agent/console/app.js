// refbus console: the frame, the session, and the reading pages (login, inbox, case,
// directory), routed by the URL's hash; forms.js adds the pages that act. Every visible
// string comes from the catalog (i18n/ko.json, i18n/en.json); everything the API returns is
// shown through RefbusText (text, never markup). Requests go to this agent's own API, same
// origin. The session is an HttpOnly cookie the browser sends by itself (set by
// POST /v1/login with "cookie": true); every POST and PUT also carries the session's CSRF
// token in X-Refbus-CSRF, kept here in memory only (GET /v1/session gives it again after a
// reload).
'use strict';
(function () {
  var T = window.RefbusText;
  var catalog = {};
  var lang = 'ko';
  var pollTimer = null;
  var session = { operator: '', role: '', csrf: '' };
  var routes = [];  // [prefix, page(rest)]: forms.js adds its own

  function t(key) { return Object.prototype.hasOwnProperty.call(catalog, key) ? catalog[key] : key; }
  // A catalog text for an API name ("type.wee-center"), or the name itself if there is none.
  function tn(prefix, name) { var k = prefix + '.' + name; return t(k) === k ? String(name) : t(k); }
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
    if (method !== 'GET') init.headers['X-Refbus-CSRF'] = session.csrf;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      // A 401 with WWW-Authenticate is the agent refusing the session; one without is a
      // refusal the request met further on (a linkage evaluator's proof that fails).
      if (r.status === 401 && r.headers.get('WWW-Authenticate') && session.operator && path !== '/v1/login') {
        // The session ended (idle timeout, logout elsewhere, account changed): log in again.
        session = { operator: '', role: '', csrf: '' };
        showSession();
        window.location.hash = '#/login';
      }
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
    // A new container per page: a reply that arrives after the operator has moved on
    // renders into a detached node, never into the page now shown.
    var page = T.el('div');
    byId('page').replaceChildren(page);
    return page;
  }

  function poll(fn, ms) { pollTimer = setInterval(fn, ms); }

  function showSession() {
    T.setText(byId('who'), session.operator ? t('nav.who') + ': ' + session.operator : '');
    byId('nav-logout').hidden = !session.operator;
    byId('nav-login').hidden = !!session.operator;
  }

  function loginPage() {
    var page = startPage('login.title');
    var form = page.appendChild(T.el('form'));
    form.id = 'login-form';
    var op = T.input(form, 'operator', t('login.operator'), 'text');
    op.autocomplete = 'username';
    var pw = T.input(form, 'password', t('login.password'), 'password');
    pw.autocomplete = 'current-password';
    T.submit(form, t('login.submit'));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      api('POST', '/v1/login', { operator: op.value, password: pw.value, cookie: true }).then(function (r) {
        pw.value = '';
        if (!r.ok) { showStatus(errorText(r), true); return; }
        session = { operator: r.body.operator, role: r.body.role, csrf: r.body.csrf_token };
        showSession();
        window.location.hash = '#/inbox';
      });
    });
  }

  function logout() {
    api('POST', '/v1/logout', {}).then(function () {
      session = { operator: '', role: '', csrf: '' };
      showSession();
      window.location.hash = '#/login';
    });
  }

  function caseLink(ref) {
    var a = T.el('a', ref);
    a.href = '#/case/' + encodeURIComponent(ref);
    return a;
  }

  function link(textKey, hash) {
    var a = T.el('a', t(textKey));
    a.href = hash;
    return a;
  }

  // What the operator can do with a message of the inbox.
  function inboxAction(m) {
    if (m.status !== 'ok') return '';
    if (!m.opened && (m.kind === 'referral' || m.kind === 'handoff' || m.kind === 'deletion-request')) {
      return link('inbox.open', '#/open/' + encodeURIComponent(m.message_id));
    }
    if (m.kind === 'referral' && m.referral_id) return link('inbox.answer', '#/referrals');
    if (m.kind === 'handoff' && m.handoff_id) return link('inbox.answer', '#/handoff/' + encodeURIComponent(m.handoff_id));
    if (m.kind === 'deletion-request') return link('inbox.report', '#/deletions');
    return '';
  }

  // The access notices and purge confirmations of this agency's cases (GET /v1/cases/{case}
  // of each case a consent names; the most recent 20 cases), newest first.
  function caseNews() {
    return api('GET', '/v1/consents').then(function (r) {
      var refs = [];
      (r.ok && Array.isArray(r.body) ? r.body : []).forEach(function (g) {
        if (g.case_ref && refs.indexOf(g.case_ref) < 0) refs.push(g.case_ref);
      });
      return Promise.all(refs.slice(-20).map(function (ref) {
        return api('GET', '/v1/cases/' + encodeURIComponent(ref));
      }));
    }).then(function (cases) {
      var notices = [], purges = [];
      cases.forEach(function (c) {
        if (!c.ok || !c.body) return;
        (c.body.access_notices || []).forEach(function (n) {
          notices.push([n.opened_at_ms, [T.formatKst(n.opened_at_ms), caseLink(c.body.case_ref), n.agency, n.operator, tn('kind', n.kind)]]);
        });
        (c.body.purge_confirmations || []).forEach(function (p) {
          purges.push([p.purged_at_ms, [T.formatKst(p.purged_at_ms), caseLink(c.body.case_ref), p.agency, String(p.messages_purged)]]);
        });
      });
      var newest = function (a, b) { return b[0] - a[0]; };
      var rows = function (l) { return l.sort(newest).map(function (x) { return x[1]; }); };
      return { notices: rows(notices), purges: rows(purges) };
    });
  }

  function renderNews(box, news) {
    box.replaceChildren();
    box.appendChild(T.el('h2', t('case.notices')));
    box.appendChild(T.table(t('case.notices'), [t('case.at'), t('inbox.case'), t('case.agency'),
      t('case.by'), t('inbox.kind')], news.notices));
    box.appendChild(T.el('h2', t('case.purges')));
    box.appendChild(T.table(t('case.purges'), [t('case.at'), t('inbox.case'), t('case.agency'),
      t('case.purged_messages')], news.purges));
  }

  function renderInbox(page, r) {
    if (!r.ok) { showStatus(errorText(r), true); return; }
    var rows = (Array.isArray(r.body) ? r.body : []).map(function (m) {
      return [T.formatKst(m.received_at_ms), m.from, tn('kind', m.kind), caseLink(m.case_ref || ''),
        tn('inbox.status', m.status), m.opened ? t('common.yes') : t('common.no'), inboxAction(m)];
    });
    var list = byId('inbox-messages');
    if (!list) return;  // the operator has moved to another page meanwhile
    list.replaceChildren(T.table(t('inbox.caption'), [t('inbox.received'), t('inbox.from'),
      t('inbox.kind'), t('inbox.case'), t('inbox.status'), t('inbox.opened'), t('inbox.action')], rows));
    showStatus(rows.length ? '' : t('inbox.empty'), false);
  }

  function inboxPage() {
    var page = startPage('inbox.title');
    page.appendChild(T.el('div')).id = 'inbox-messages';
    var news = page.appendChild(T.el('section'));
    news.id = 'inbox-news';
    var refresh = function () {
      api('GET', '/v1/inbox').then(function (r) { renderInbox(page, r); });
      caseNews().then(function (n) { renderNews(news, n); });
    };
    refresh();
    poll(refresh, 3000);  // live updates: new messages within 3 s
  }

  function section(page, titleKey) {
    var s = page.appendChild(T.el('section'));
    s.appendChild(T.el('h2', t(titleKey)));
    return s;
  }

  function caseDetails(page, c) {
    var dl = page.appendChild(T.el('dl'));
    [['case.ref', c.case_ref], ['case.local', c.local_case], ['case.lead', c.lead],
      ['case.closed', c.closed ? t('common.yes') : t('common.no')]].forEach(function (p) {
      dl.appendChild(T.el('dt', t(p[0])));
      dl.appendChild(T.el('dd', p[1]));
    });
    var notices = (c.access_notices || []).map(function (n) {
      return [T.formatKst(n.opened_at_ms), n.agency, n.operator, tn('kind', n.kind)];
    });
    section(page, 'case.notices').appendChild(T.table(t('case.notices'), [t('case.at'), t('case.agency'),
      t('case.by'), t('inbox.kind')], notices));
    var purges = (c.purge_confirmations || []).map(function (p) {
      return [T.formatKst(p.purged_at_ms), p.agency, p.grant_id, String(p.messages_purged)];
    });
    section(page, 'case.purges').appendChild(T.table(t('case.purges'), [t('case.at'), t('case.agency'),
      t('case.grant'), t('case.purged_messages')], purges));
  }

  function caseTimeline(page, c) {
    var rows = (Array.isArray(c.timeline) ? c.timeline : []).map(function (e) {
      var to = Array.isArray(e.to) ? e.to.join(', ') : e.to;
      return [T.formatKst(e.at_ms), tn('event', e.event), e.from || '', to || '',
        e.by || e.operator || '', e.state ? tn('state', e.state) : (e.purpose ? tn('purpose', e.purpose) : '')];
    });
    section(page, 'case.timeline').appendChild(T.table(t('case.timeline'), [t('case.at'), t('case.event'),
      t('case.from'), t('case.to'), t('case.by'), t('case.detail')], rows));
  }

  function renderCase(into, c) {
    caseDetails(into, c);
    caseTimeline(into, c);
    var acts = section(into, 'case.actions');
    var ul = acts.appendChild(T.el('ul'));
    (c.grants || []).forEach(function (g) {
      ul.appendChild(T.el('li')).appendChild(link('case.revoke', '#/revoke/' + encodeURIComponent(g)))
          .appendChild(document.createTextNode(' ' + g));
    });
    if (!c.closed) {
      // The case's identifiers are entered on the linkage page; only the case goes in the URL.
      ul.appendChild(T.el('li')).appendChild(link('case.add_link', '#/linkage/' + encodeURIComponent(c.case_ref)));
      ul.appendChild(T.el('li')).appendChild(link('case.close', '#/close/' + encodeURIComponent(c.case_ref)));
    }
  }

  // Live like the inbox: access notices, purge confirmations and state changes appear within
  // 3 s. The page is rebuilt only when the case changed, so keyboard focus and the reader's
  // place stay put while nothing happens.
  function casePage(ref) {
    var page = startPage('case.title');
    var shown = null;
    var refresh = function () {
      api('GET', '/v1/cases/' + encodeURIComponent(ref)).then(function (r) {
        if (!r.ok) { showStatus(errorText(r), true); return; }
        var now = JSON.stringify(r.body || {});
        if (now === shown) return;
        shown = now;
        var fresh = T.el('div');
        renderCase(fresh, r.body || {});
        page.replaceChildren(fresh);
      });
    };
    refresh();
    poll(refresh, 3000);
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
        var section = page.appendChild(T.el('section'));
        section.appendChild(T.el('h2', tn('type', first.agency_type) + ' · ' + first.region));
        var rows = groups[key].map(function (a) { return [a.display_name, a.id, tn('party', a.status)]; });
        section.appendChild(T.table(t('directory.caption'), [t('directory.name'), t('directory.id'),
          t('directory.status')], rows));
      });
    });
  }

  function route() {
    var h = window.location.hash;
    if (h === '#/login') return loginPage();
    if (!session.operator) { window.location.hash = '#/login'; return undefined; }  // hashchange renders it
    for (var i = 0; i < routes.length; i++) {
      if (h.indexOf(routes[i][0]) === 0) return routes[i][1](decodeURIComponent(h.substring(routes[i][0].length)));
    }
    return inboxPage();
  }

  function applyFrame() {
    T.setText(byId('skip-link'), t('nav.skip'));
    T.setText(byId('brand'), t('app.title'));
    byId('nav').setAttribute('aria-label', t('nav.label'));
    ['inbox', 'consent', 'referrals', 'handoff', 'deletions', 'overrides', 'linkage', 'directory', 'login', 'logout'].forEach(function (n) {
      T.setText(byId('nav-' + n), t('nav.' + n));
    });
    T.setText(byId('lang-label'), t('nav.language'));
    byId('lang').value = lang;
    showSession();
  }

  function start(l) {
    return loadCatalog(l).then(function () { return api('GET', '/v1/session'); }).then(function (r) {
      if (r.ok && r.body && r.body.csrf_token) {
        session = { operator: r.body.operator, role: r.body.role, csrf: r.body.csrf_token };
      }
      applyFrame();
      route();
    });
  }

  routes.push(['#/case/', casePage], ['#/directory', directoryPage], ['#/inbox', inboxPage]);
  window.RefbusApp = {
    api: api, t: t, tn: tn, errorText: errorText, showStatus: showStatus, startPage: startPage,
    poll: poll, section: section, caseLink: caseLink, routes: routes,
    session: function () { return session; }
  };

  document.addEventListener('DOMContentLoaded', function () {
    byId('lang').addEventListener('change', function (ev) {
      var l = ev.target.value === 'en' ? 'en' : 'ko';
      try { window.localStorage.setItem('refbus.lang', l); } catch (e) { /* private mode */ }
      start(l);
    });
    byId('nav-logout').addEventListener('click', function (ev) { ev.preventDefault(); logout(); });
    // Only the latest of several queued hash changes renders (each would render the page
    // now in the URL, twice over, replacing a form while the operator fills it).
    window.addEventListener('hashchange', function (ev) { if (ev.newURL === window.location.href) route(); });
    start(storedLang());
  });
})();
