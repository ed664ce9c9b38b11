#!/usr/bin/env python3
"""Browser test of the agent's console: a real refbus-broker and refbus-agent (keys from
refbus-keys federation init), loaded in Debian's headless chromium through chromedriver.

  console_test.py BIN_DIR SCREENSHOT_DIR

Checks, page by page (inbox, directory, case, login): Korean by default (lang=ko, catalog
strings), English switchable and remembered; the security headers on every page and API
reply (CSP, nosniff, no-referrer, no-store); no browser console error (a CSP violation is
one); a directory display name and a case number holding <script> and <img onerror> render
as their raw text with no alert, no script run and no element made; times in KST (the
formatter's cases); a small accessibility rule set (labels, names, lang, headings, table
captions, text contrast computed from the rendered colors: axe-core is not in Debian). It
saves a screenshot of each page to SCREENSHOT_DIR. It also starts the agent with a LAN
[api] listen and no TLS and checks that it refuses to start.

Until operator sessions land (issue 18 item 1: POST /v1/login), the browser reaches the API
with the agent's bearer token, injected as a request header through the DevTools protocol
(Network.setExtraHTTPHeaders): the pages never see it.
A missing chromium, chromedriver or selenium fails the test, saying what to install.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

EVIL_NAME = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
EVIL_CASE = '<img src=x onerror=window.__pwned=3>'
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

failures = []
passes = 0


def check(ok, what):
    global passes
    if ok:
        passes += 1
        print('ok   - ' + what)
    else:
        failures.append(what)
        print('FAIL - ' + what)


def die(why):
    print('FAIL - ' + why)
    sys.exit(1)


def need_browser():
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append('python3-selenium (for ' + sys.executable + ')')
    if not shutil.which('chromium'):
        missing.append('chromium')
    if not shutil.which('chromedriver'):
        missing.append('chromium-driver')
    if missing:
        die('the browser test needs: ' + ', '.join(missing) +
            ' (sudo apt-get install chromium chromium-driver python3-selenium, '
            'or deploy/install-deps.sh)')


def wait_for(fn, what, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    die('timed out waiting for ' + what)


class Federation:
    """One broker and one agent (the Wee center), real processes, real keys."""

    def __init__(self, bin_dir, work):
        self.bin, self.work, self.procs = bin_dir, work, []
        manifest = os.path.join(work, 'fed.toml')
        with open(manifest, 'w') as f:
            f.write('federation = "console-test"\nauthority = "authority"\n'
                    '[[broker]]\nid = "seoul-broker"\nregion = "seoul"\n'
                    '[[agency]]\nid = "seoul-wee-01"\ntype = "wee-center"\nregion = "seoul"\n'
                    'home_broker = "seoul-broker"\nname = "서울 강남 Wee 센터"\n'
                    '[[agency]]\nid = "busan-counseling-01"\ntype = "counseling-center"\n'
                    'region = "busan"\nhome_broker = "seoul-broker"\nname = %s\n'
                    % json.dumps(EVIL_NAME))
        self.run([os.path.join(bin_dir, 'refbus-keys'), 'federation', 'init', '--manifest',
                  manifest, '--out', os.path.join(work, 'fed')])

    def run(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            die(' '.join(argv[:3]) + ' failed: ' + r.stderr[-2000:])
        return r.stdout

    def start(self, name, argv, log):
        p = subprocess.Popen(argv, stdout=open(log, 'w'), stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def start_broker(self):
        d = os.path.join(self.work, 'fed', 'seoul-broker')
        cfg = os.path.join(d, 'broker.toml')
        with open(cfg, 'w') as f:
            f.write('[broker]\nid = "seoul-broker"\nbind = "tcp://127.0.0.1:*"\n'
                    'data_dir = "data"\nkey_file = "identity.key"\ndirectory = "directory"\n'
                    'anchor = "authority.pub"\ntrust_state = "trust-state"\n'
                    'endpoint_file = "endpoint"\n')
        self.start('broker', [os.path.join(self.bin, 'refbus-broker'), '-c', cfg],
                   os.path.join(self.work, 'broker.log'))
        ep = os.path.join(d, 'endpoint')
        wait_for(lambda: os.path.exists(ep) and os.path.getsize(ep) > 0, 'the broker')
        return open(ep).read().strip()

    def agent_config(self, endpoint, listen, name, agency='seoul-wee-01'):
        d = os.path.join(self.work, 'fed', agency)
        cfg = os.path.join(d, name)
        with open(cfg, 'w') as f:
            f.write('[agent]\nid = "%s"\ndata_dir = "agent-data"\n' % agency +
                    'key_file = "identity.key"\ndirectory = "directory"\n'
                    'anchor = "authority.pub"\ntrust_state = "agent-trust-state"\n'
                    'broker_endpoint = "%s"\n[api]\nlisten = "%s"\n' % (endpoint, listen))
        return cfg, d

    def start_agent(self, endpoint, agency='seoul-wee-01', log='agent.log'):
        cfg, d = self.agent_config(endpoint, '127.0.0.1:0', 'agent.toml', agency)
        self.start('agent', [os.path.join(self.bin, 'refbus-agent'), 'run', '-c', cfg],
                   os.path.join(self.work, log))
        url_file = os.path.join(d, 'agent-data', 'api.url')
        wait_for(lambda: os.path.exists(url_file) and os.path.getsize(url_file) > 0,
                 'the agent\'s API (see agent.log)')
        url = open(url_file).read().strip()
        token = open(os.path.join(d, 'agent-data', 'api.token')).read().strip()
        return url, token

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def http(url, token=None, method='GET', body=None):
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header('Authorization', 'Bearer ' + token)
    data = None
    if body is not None:
        req.add_header('Content-Type', 'application/json')
        data = json.dumps(body).encode()
    try:
        with urllib.request.urlopen(req, data=data, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def check_headers(url, token, what):
    status, headers, _ = http(url, token)
    check(headers.get('Content-Security-Policy') == CSP, what + ': strict CSP')
    check(headers.get('X-Content-Type-Options') == 'nosniff', what + ': nosniff')
    check(headers.get('Referrer-Policy') == 'no-referrer', what + ': no referrer')
    check(headers.get('Cache-Control') == 'no-store', what + ': Cache-Control no-store')
    return status


# Runs in the page: the accessibility rule set. Returns a list of problems (empty: none).
A11Y_JS = r'''
var problems = [];
function name(e) { return (e.getAttribute('aria-label') || e.textContent || '').trim(); }
if (!/^(ko|en)$/.test(document.documentElement.lang)) problems.push('html lang is "' + document.documentElement.lang + '"');
if (!document.title.trim()) problems.push('no document title');
document.querySelectorAll('input, select, textarea').forEach(function (e) {
  var l = e.id ? document.querySelector('label[for="' + e.id + '"]') : null;
  if (!l || !l.textContent.trim()) problems.push('no label for ' + e.tagName + '#' + e.id);
});
document.querySelectorAll('img').forEach(function (e) {
  if (!e.hasAttribute('alt')) problems.push('img without alt');
});
document.querySelectorAll('button, a[href]').forEach(function (e) {
  if (!name(e)) problems.push(e.tagName + ' without a name');
});
document.querySelectorAll('nav').forEach(function (e) {
  if (!e.getAttribute('aria-label')) problems.push('nav without a label');
});
var h1 = document.querySelectorAll('h1');
if (h1.length !== 1 || !name(h1[0])) problems.push(h1.length + ' h1 headings (want one with text)');
var last = 0;
document.querySelectorAll('h1, h2, h3, h4, h5, h6').forEach(function (h) {
  var level = +h.tagName[1];
  if (level > last + 1) problems.push('heading ' + h.tagName + ' skips a level after h' + last);
  last = level;
});
document.querySelectorAll('table').forEach(function (t) {
  if (!t.querySelector('caption') || !t.querySelector('caption').textContent.trim()) problems.push('table without caption');
  if (!t.querySelector('th')) problems.push('table without header cells');
});
function rgb(s) { var m = s.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; }
function lum(c) {
  var v = c.slice(0, 3).map(function (x) { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
function background(e) {
  for (; e; e = e.parentElement) {
    var c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length < 4 || c[3] > 0) return c;
  }
  return [255, 255, 255];
}
var checked = 0;
document.querySelectorAll('body *').forEach(function (e) {
  var own = Array.prototype.some.call(e.childNodes, function (n) { return n.nodeType === 3 && n.textContent.trim(); });
  if (!own || !e.getClientRects().length) return;
  var st = getComputedStyle(e);
  if (st.visibility === 'hidden' || st.display === 'none') return;
  var r = e.getBoundingClientRect();
  if (r.right < 0 || r.bottom < 0) return;  // the skip link, off screen until focused
  var a = lum(rgb(st.color)), b = lum(background(e));
  var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  checked++;
  if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ':1 for ' + e.tagName + ' "' + e.textContent.trim().slice(0, 20) + '"');
});
if (checked < 3) problems.push('only ' + checked + ' text elements checked for contrast');
return problems;
'''


def browser(token):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which('chromium')
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
              '--window-size=1200,900', '--lang=ko-KR', '--no-first-run'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=opts)
    d.set_page_load_timeout(20)
    d.execute_cdp_cmd('Network.enable', {})
    d.execute_cdp_cmd('Network.setExtraHTTPHeaders',
                      {'headers': {'Authorization': 'Bearer ' + token}})
    return d


def errors_in_log(d, url):
    # The login page's test signs in as an operator that does not exist, on purpose: the
    # API answers 401 and chromium logs the failed request. Nothing else is let through.
    expected = url + '/v1/login - Failed to load resource: the server responded with a ' \
        'status of 401 (Unauthorized)'
    return [e['message'] for e in d.get_log('browser')
            if e['level'] == 'SEVERE' and e['message'] != expected]


def a11y(d, page):
    problems = d.execute_script(A11Y_JS)
    check(problems == [], page + ': accessibility rules pass' +
          ('' if not problems else ' -- ' + '; '.join(problems[:8])))


def no_script_ran(d, page):
    from selenium.common.exceptions import NoAlertPresentException
    try:
        d.switch_to.alert
        check(False, page + ': no alert opened')
    except NoAlertPresentException:
        check(True, page + ': no alert opened')
    check(d.execute_script('return window.__pwned === undefined'),
          page + ': no injected script or handler ran')
    check(d.execute_script("return document.querySelectorAll('#page img, #page script').length")
          == 0, page + ': no element was made from the text')


def text_of(d, css):
    return d.execute_script(
        'return Array.prototype.map.call(document.querySelectorAll(arguments[0]), '
        'function (e) { return e.textContent; });', css)


def wait_text(d, css, what, pred=lambda ts: len(ts) > 0):
    return wait_for(lambda: pred(text_of(d, css)) and text_of(d, css), what)


def shot(d, shots, name):
    path = os.path.join(shots, name + '.png')
    check(d.save_screenshot(path) and os.path.getsize(path) > 1000, 'screenshot ' + path)


def pages(d, url, shots, case_ref):
    d.get(url + '/')
    wait_text(d, '#nav-inbox', 'the console frame', lambda ts: ts[0] != '')
    check(d.current_url == url + '/console/', '/ redirects to /console/ (' + d.current_url + ')')
    check(d.execute_script('return document.documentElement.lang') == 'ko', 'lang=ko by default')
    check(text_of(d, '#nav-inbox') == ['받은 연계'], 'Korean navigation from the catalog')
    wait_text(d, '#status', 'the inbox', lambda ts: ts[0] != '')
    check(text_of(d, '#page-title') == ['받은 연계'], 'inbox title in Korean')
    check(text_of(d, '#status') == ['받은 메시지가 없습니다.'], 'empty inbox says so in Korean')
    a11y(d, 'inbox')
    shot(d, shots, 'inbox')

    d.get(url + '/console/#/directory')
    wait_text(d, '#page td', 'the directory table')
    check(EVIL_NAME in text_of(d, '#page td'),
          'directory: a display name with <script> and <img onerror> is shown as its raw text')
    check('서울 강남 Wee 센터' in text_of(d, '#page td'), 'directory: a Korean name renders')
    check(any(h.startswith('성폭력 상담소') for h in text_of(d, '#page h2')),
          'directory: grouped by type (Korean type name) and region')
    no_script_ran(d, 'directory')
    a11y(d, 'directory')
    shot(d, shots, 'directory')

    d.get(url + '/console/#/case/' + case_ref)
    wait_text(d, '#page dd', 'the case page')
    check(EVIL_CASE in text_of(d, '#page dd'), 'case: a case number with <img onerror> is text')
    check(any(t.endswith(' KST') for t in text_of(d, '#page td')), 'case: timeline times in KST')
    check('동의 기록' in text_of(d, '#page td'), 'case: timeline events named in Korean')
    no_script_ran(d, 'case')
    a11y(d, 'case')
    shot(d, shots, 'case')

    d.get(url + '/console/#/login')
    op = wait_for(lambda: d.find_elements('id', 'operator'), 'the login form')[0]
    op.send_keys('kim-teacher')
    d.find_element('id', 'password').send_keys('not-yet')
    d.find_element('css selector', '#login-form button').click()
    status = wait_text(d, '#status', 'the login reply', lambda ts: ts[0] != '')
    # No such operator: the API's refusal is shown as an error.
    check(d.find_element('id', 'status').get_attribute('class') == 'error',
          'login: the API\'s answer is shown as an error: ' + status[0])
    check(d.find_element('id', 'password').get_attribute('value') == '', 'login: password cleared')
    a11y(d, 'login')
    shot(d, shots, 'login')


def language_and_time(d, url, shots):
    d.get(url + '/console/#/inbox')
    wait_text(d, '#nav-inbox', 'the frame', lambda ts: ts[0] == '받은 연계')
    from selenium.webdriver.support.ui import Select
    Select(d.find_element('id', 'lang')).select_by_value('en')
    wait_text(d, '#nav-inbox', 'English', lambda ts: ts[0] == 'Inbox')
    check(d.execute_script('return document.documentElement.lang') == 'en', 'lang=en after switch')
    d.refresh()
    wait_text(d, '#nav-inbox', 'English after reload', lambda ts: ts[0] == 'Inbox')
    check(True, 'English is remembered across a reload')
    a11y(d, 'inbox (English)')
    shot(d, shots, 'inbox-en')
    cases = [('Date.UTC(2026, 11, 7, 4, 5)', '2026-12-07 13:05 KST'),
             ('Date.UTC(2026, 11, 31, 15, 0)', '2027-01-01 00:00 KST'),
             ('Date.UTC(2024, 1, 28, 23, 59, 59)', '2024-02-29 08:59 KST'),
             ('0', ''), ('"1700000000000"', ''), ('NaN', '')]
    for expr, want in cases:
        got = d.execute_script('return RefbusText.formatKst(%s)' % expr)
        check(got == want, 'formatKst(%s) = "%s" (got "%s")' % (expr, want, got))
    Select(d.find_element('id', 'lang')).select_by_value('ko')
    wait_text(d, '#nav-inbox', 'Korean again', lambda ts: ts[0] == '받은 연계')


def live_inbox(d, url, fed, endpoint, shots):
    """The inbox shows a referral sent by another agency through the broker, without a
    reload (it polls), with the sender's field value never rendered as markup."""
    d.get(url + '/console/#/inbox')
    wait_text(d, '#status', 'the empty inbox', lambda ts: ts[0] == '받은 메시지가 없습니다.')
    d.execute_script('window.__sameDocument = true')  # gone if the page were reloaded
    other, token = fed.start_agent(endpoint, 'busan-counseling-01', 'counseling.log')
    status, _, body = http(other + '/v1/consents', token, 'POST', {
        'basis': 'consent-legal-representative', 'consenters': ['guardian'],
        'subject_assent': True, 'purposes': ['counseling'], 'categories': ['contact'],
        'recipients': ['seoul-wee-01'], 'valid_days': 30, 'operator': 'lee-counselor'})
    if status != 201:
        die('the counseling center could not record a consent: %d %s' % (status, body[:300]))
    grant = json.loads(body)['grant_id']
    status, _, body = http(other + '/v1/referrals', token, 'POST', {
        'grant_id': grant, 'to': 'seoul-wee-01', 'purpose': 'counseling',
        'operator': 'lee-counselor',
        'fields': [{'category': 'contact', 'name': 'note', 'value': EVIL_NAME}]})
    check(status == 201, 'the counseling center sends a referral (%d)' % status)
    rows = wait_for(lambda: [t for t in text_of(d, '#page td') if t == 'busan-counseling-01'],
                    'the referral in the open inbox (polling)', timeout=20)
    check(rows != [] and d.execute_script('return window.__sameDocument === true'),
          'inbox: the new referral appears without a reload')
    check(any(t.endswith(' KST') for t in text_of(d, '#page td')), 'inbox: received time in KST')
    no_script_ran(d, 'inbox')
    a11y(d, 'inbox with a referral')
    shot(d, shots, 'inbox-referral')


def lan_without_tls_refused(fed, endpoint):
    cfg, _ = fed.agent_config(endpoint, '0.0.0.0:0', 'agent-lan.toml')
    r = subprocess.run([os.path.join(fed.bin, 'refbus-agent'), 'run', '-c', cfg],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and 'only over TLS' in r.stdout + r.stderr,
          'a LAN [api] listen without TLS refuses to start (exit %d: %s)'
          % (r.returncode, (r.stdout + r.stderr).strip()[-300:]))


def main():
    if len(sys.argv) != 3:
        die('usage: console_test.py BIN_DIR SCREENSHOT_DIR')
    bin_dir, shots = sys.argv[1], sys.argv[2]
    need_browser()
    os.makedirs(shots, exist_ok=True)
    work = tempfile.mkdtemp(prefix='refbus-console.')
    fed = Federation(bin_dir, work)
    d = None
    try:
        endpoint = fed.start_broker()
        url, token = fed.start_agent(endpoint)
        status, _, body = http(url + '/v1/consents', token, 'POST', {
            'basis': 'consent-legal-representative', 'consenters': ['guardian'],
            'subject_assent': True, 'purposes': ['counseling'], 'categories': ['contact'],
            'recipients': ['busan-counseling-01'], 'valid_days': 30,
            'local_case': EVIL_CASE, 'operator': 'kim-teacher'})
        if status != 201:
            die('recording a consent failed: %d %s' % (status, body[:500]))
        case_ref = json.loads(body)['case_ref']
        for path in ('/console/', '/console/app.js', '/console/i18n/ko.json'):
            check_headers(url + path, None, path)
        for path in ('/v1/inbox', '/v1/directory', '/v1/cases/' + case_ref):
            check(check_headers(url + path, token, path) == 200, path + ': 200')
        check(check_headers(url + '/v1/inbox', None, '/v1/inbox without a token') == 401,
              '/v1/inbox without a token is 401')
        d = browser(token)
        pages(d, url, shots, case_ref)
        live_inbox(d, url, fed, endpoint, shots)
        language_and_time(d, url, shots)
        errors = errors_in_log(d, url)
        check(errors == [], 'no browser console error on any page' +
              ('' if not errors else ': ' + ' | '.join(errors[:5])))
        lan_without_tls_refused(fed, endpoint)
    finally:
        if d is not None:
            d.quit()
        fed.stop()
        if failures:
            for log in ('broker.log', 'agent.log', 'counseling.log'):
                p = os.path.join(work, log)
                if os.path.exists(p):
                    print('--- ' + log + '\n' + open(p).read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print('%d passed, %d failed' % (passes, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
