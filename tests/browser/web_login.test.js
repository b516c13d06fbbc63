// The web login in a REAL browser: Debian's Chromium, headless, driven by
// playwright-core, against the real wxgate binary in mock mode (an
// official-account app, the mock authorize page) in front of an echo
// backend. A person opens a protected page, lands on the authorize page,
// allows, comes back to the page they asked for and the backend sees their
// identity; a reload keeps the session; a logout ends it.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { chromium } = require('playwright-core');
const { startGateway } = require('../../clients/miniprogram/test/gateway.js');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OA = 'wxbrowseroa00001';

/** A port free now, for a gateway whose public_url must name it. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

let gateway;
let browser;
let base;

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  gateway = await startGateway(
    {
      server: { listen: `"127.0.0.1:${port}"` },
      // The defaults: a Secure, HttpOnly, SameSite=Lax cookie (Chromium
      // keeps Secure cookies from http://127.0.0.1, a trustworthy origin).
      web: { public_url: `"${base}"` },
    },
    `[[apps]]\nappid = "${OA}"\nkind = "official_account"\nmode = "mock"\n`,
  );
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (gateway) await gateway.stop();
});

/** The echo backend's answer, as the page shows it. */
async function echoed(page) {
  return JSON.parse(await page.locator('body').innerText());
}

test('a protected page → the authorize page → Allow → back, with the identity', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/orders?id=7`);
  assert.match(page.url(), /\/_wxgate\/oauth\/mock\?/, 'landed on the authorize page');
  assert.equal(await page.locator('#app').innerText(), OA);
  assert.equal(gateway.hits('/orders'), 0, 'the backend saw nothing yet');

  await page.locator('#code').fill('alice');
  await Promise.all([page.waitForURL(`${base}/orders?id=7`), page.locator('#allow').click()]);
  const seen = await echoed(page);
  assert.equal(seen.url, '/orders?id=7');
  assert.equal(seen.headers['x-wx-appid'], OA);
  assert.match(seen.headers['x-wx-openid'], /^o/);
  assert.ok(!String(seen.headers.cookie || '').includes('wxgate_session'), 'the cookie stays with wxgate');

  const [cookie] = (await context.cookies(base)).filter((c) => c.name === 'wxgate_session');
  assert.ok(cookie, 'the session cookie is kept');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Lax');
  assert.equal(cookie.secure, true);

  // The same person in the mini-program: one unionid.
  const login = await (await fetch(`${base}/login`, { method: 'POST', body: '{"code":"alice"}' })).json();
  const fromApp = await (await fetch(`${base}/x`, { headers: { 'x-session-id': login.session_id } })).json();
  assert.equal(fromApp.headers['x-wx-unionid'], seen.headers['x-wx-unionid']);
  assert.notEqual(fromApp.headers['x-wx-openid'], seen.headers['x-wx-openid'], 'each app its own openid, as WeChat gives');

  // A reload keeps the session; no trip to the authorize page.
  await page.reload();
  assert.equal(page.url(), `${base}/orders?id=7`);
  assert.equal((await echoed(page)).headers['x-wx-openid'], seen.headers['x-wx-openid']);

  // The page's own script logs out (same origin: the CSRF check passes).
  const status = await page.evaluate(async () => (await fetch('/logout', { method: 'POST' })).status);
  assert.equal(status, 204);
  assert.deepEqual((await context.cookies(base)).filter((c) => c.name === 'wxgate_session'), []);
  await page.goto(`${base}/orders?id=7`);
  assert.match(page.url(), /\/_wxgate\/oauth\/mock\?/, 'logged out: back to the authorize page');
  await context.close();
});

test('declining on the authorize page ends on a page in the reader\'s language, with a way back in', async () => {
  for (const [locale, says, again] of [['zh-CN', '同意授权', '重新登录'], ['en-US', 'not authorised', 'Log in again']]) {
    const context = await browser.newContext({ locale });
    const page = await context.newPage();
    await page.goto(`${base}/orders`);
    await Promise.all([page.waitForURL(/\/_wxgate\/oauth\/callback/), page.locator('#deny').click()]);
    assert.equal(await page.locator('#code').innerText(), 'oauth_denied');
    assert.match(page.url(), /\/_wxgate\/oauth\/callback\?state=/, 'it stayed on the page: no loop');
    assert.match(await page.locator('#message').innerText(), new RegExp(says), locale);
    assert.equal(await page.locator('#again').innerText(), again);
    // The link starts the login again: on to the authorize page.
    await Promise.all([page.waitForURL(/\/_wxgate\/oauth\/mock\?/), page.locator('#again').click()]);
    await context.close();
  }
});

test('with web.error_redirect a failed login lands on the site\'s own page, the code in its query', async () => {
  const port = await freePort();
  const siteBase = `http://127.0.0.1:${port}`;
  const site = await startGateway(
    {
      server: { listen: `"127.0.0.1:${port}"` },
      web: { public_url: `"${siteBase}"`, error_redirect: '"/login-failed?from=wx"' },
      routes: { public: '["/login-failed"]' },
    },
    `[[apps]]\nappid = "${OA}"\nkind = "official_account"\nmode = "mock"\n`,
  );
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${siteBase}/orders`);
    await Promise.all([page.waitForURL(/\/login-failed/), page.locator('#deny').click()]);
    assert.equal(page.url(), `${siteBase}/login-failed?from=wx&code=oauth_denied`);
    const seen = await echoed(page);
    assert.equal(seen.url, '/login-failed?from=wx&code=oauth_denied', 'the site\'s own page answered');
  } finally {
    await context.close();
    await site.stop();
  }
});

test('another site cannot post with the cookie', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/orders`);
  await Promise.all([page.waitForURL(`${base}/orders`), page.locator('#allow').click()]);
  // A cross-origin page: SameSite=Lax keeps the cookie off its POST, and
  // even a cookie that came along would meet the Origin check.
  const other = await freePort();
  const evil = require('node:http').createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<form id="f" method="post" action="${base}/orders"></form>`);
  });
  await new Promise((resolve) => evil.listen(other, '127.0.0.1', resolve));
  const before = gateway.hits('/orders');
  const attacker = await context.newPage();
  await attacker.goto(`http://localhost:${other}/`);
  await Promise.all([attacker.waitForURL(`${base}/orders`), attacker.evaluate(() => document.getElementById('f').submit())]);
  const body = await attacker.locator('body').innerText();
  assert.match(body, /session_invalid|csrf_rejected/, body);
  assert.equal(gateway.hits('/orders'), before, 'the backend never saw the forged post');
  evil.close();
  await context.close();
});

test('a __Host- cookie name logs in: the browser keeps both cookies its prefix rules allow', async () => {
  // Chromium drops a __Host- cookie that is not Secure, has a Domain or a
  // Path other than /: a state cookie scoped to the callback never came back.
  const port = await freePort();
  const hostBase = `http://127.0.0.1:${port}`;
  const hosted = await startGateway(
    { server: { listen: `"127.0.0.1:${port}"` }, web: { public_url: `"${hostBase}"`, cookie_name: '"__Host-wx"' } },
    `[[apps]]\nappid = "${OA}"\nkind = "official_account"\nmode = "mock"\n`,
  );
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${hostBase}/orders?id=9`);
    assert.match(page.url(), /\/_wxgate\/oauth\/mock\?/);
    const state = (await context.cookies(hostBase)).find((c) => c.name === '__Host-wx_state');
    assert.ok(state, 'the browser kept the state cookie');
    assert.equal(state.path, '/');
    await Promise.all([page.waitForURL(`${hostBase}/orders?id=9`), page.locator('#allow').click()]);
    const seen = await echoed(page);
    assert.equal(seen.headers['x-wx-appid'], OA);
    assert.ok(!String(seen.headers.cookie || '').includes('__Host-wx'), "wxgate's cookies stay with wxgate");
    const session = (await context.cookies(hostBase)).find((c) => c.name === '__Host-wx');
    assert.ok(session && session.secure && session.path === '/', 'the session cookie is kept');
  } finally {
    await context.close();
    await hosted.stop();
  }
});
