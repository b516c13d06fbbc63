// The client library against the REAL wxgate binary in mock mode, through
// a `wx` shim that speaks real HTTP (test/wx-shim.js).
'use strict';

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');

const { createClient, WxgateError } = require('..');
const { startGateway } = require('./gateway');
const { createWx } = require('./wx-shim');

let gateway;
before(async () => {
  gateway = await startGateway();
});
after(async () => {
  await gateway.stop();
});

let users = 0;
/** A fresh user (its own name, so its own openid) with a client. */
function setup(options = {}, gw = () => gateway) {
  users += 1;
  const wx = createWx({ user: `user${users}-${process.pid}`, appid: gw().appid });
  const api = createClient(Object.assign({ baseUrl: gw().baseUrl, wx }, options));
  return { wx, api };
}

const logins = () => gateway.metric(`wxgate_logins_total{result="ok",app="${gateway.appid}"}`);

describe('sessions', () => {
  test('concurrent requests that all get a 401 cause exactly one login', async () => {
    const { wx, api } = setup();
    wx.setStorageSync('wxgate_session_id', 'no-such-session-aaaaaaaaaaaaaaaaaaaaaaaaaaa');
    const before = await logins();
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => api.request({ url: `/orders/${i}` })));
    for (const res of answers) {
      assert.equal(res.statusCode, 200);
      assert.match(res.data.headers['x-wx-openid'], /^o/);
    }
    assert.equal(wx.logins, 1, 'one wx.login');
    assert.equal(await logins(), before + 1, 'one login at the gateway');
    // Every request carried the one new session afterwards.
    assert.equal(new Set(answers.map((r) => r.data.headers['x-wx-openid'])).size, 1);
  });

  test('logins asked for at once share one wx.login (each may rotate the key)', async () => {
    const { wx, api } = setup();
    const ids = await Promise.all([api.login(), api.login(), api.ensureFreshSessionKey(), api.login()]);
    assert.equal(new Set(ids).size, 1);
    assert.equal(wx.logins, 1);
  });

  test('a cold request logs in first: no 401 round trip', async () => {
    const { wx, api } = setup();
    const res = await api.request({ url: '/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.logins, 1);
    assert.equal(wx.requests, 2, 'the login, then the request');
    assert.ok(wx.sent.every((o) => o.header[Object.keys(o.header).find((k) => /session-id/i.test(k))] !== ''));
  });

  test("the backend's own 401 is returned as it is, no login", async () => {
    const { wx, api } = setup();
    await api.login();
    const res = await api.request({ url: '/status/401' });
    assert.equal(res.statusCode, 401);
    assert.equal(wx.logins, 1, 'only the first login');
  });

  test('logout ends the session at the gateway', async () => {
    const { wx, api } = setup();
    const id = await api.login();
    await api.logout();
    assert.equal(api.sessionId(), '');
    const res = await new Promise((resolve) =>
      wx.request({ url: `${gateway.baseUrl}/me`, header: { 'X-Session-Id': id }, success: resolve }),
    );
    assert.equal(res.statusCode, 401);
  });
});

describe('the session_key method', () => {
  test('a stale key: re-login, the data fetched again, then success', async () => {
    const { wx, api } = setup();
    await api.login();
    // Another wx.login the gateway never saw: WeChat now encrypts with a newer key.
    wx.rotateKey();
    const profile = await api.decrypt({ getData: () => wx.encrypted({ nickName: 'Mei' }) });
    assert.equal(profile.nickName, 'Mei');
    assert.deepEqual(
      wx.events.filter((e) => e !== 'checkSession'),
      ['login', 'getData', 'login', 'getData'],
      'fetched again only after the fresh login',
    );
  });

  test('a failed checkSession logs in BEFORE the data is fetched', async () => {
    const { wx, api } = setup();
    await api.login();
    wx.sessionValid = false;
    wx.events.length = 0;
    const data = await api.decrypt({ getData: () => wx.encrypted({ stepInfoList: [] }) });
    assert.deepEqual(data.stepInfoList, []);
    assert.deepEqual(wx.events, ['checkSession', 'login', 'getData']);
  });

  test('a stale key without getData is an error, not a silent retry', async () => {
    const { wx, api } = setup();
    await api.login();
    wx.rotateKey();
    const stale = wx.encrypted({ nickName: 'x' });
    await assert.rejects(api.decrypt(stale), (e) => e instanceof WxgateError && e.status === 409 && e.code === 'session_key_stale');
  });

  test('phone numbers come from the button code', async () => {
    const { api } = setup();
    await api.login();
    const number = await api.phone('button-code-1');
    assert.match(number.phoneNumber, /^138\d{8}$/);
    await assert.rejects(api.phone('err-40029-p'), (e) => e.status === 400 && e.code === 'code_invalid' && e.errcode === 40029);
  });
});

describe("mock mode's magic codes surface as documented", () => {
  const cases = [
    ['err-40029-a', 400, 'code_invalid', 40029, undefined],
    ['err-40163-b', 400, 'code_used', 40163, undefined],
    ['err-40226-c', 403, 'user_high_risk', 40226, undefined],
    ['err-45011-d', 429, 'wechat_rate_limited', 45011, 1],
    ['err--1-e', 503, 'wechat_busy', -1, 1],
    ['slow-f', 504, 'wechat_timeout', undefined, undefined],
  ];
  for (const [code, status, wxcode, errcode, retryAfter] of cases) {
    test(`${code} → ${status} ${wxcode}`, async () => {
      const { wx, api } = setup();
      wx.nextCodes.push(code);
      await assert.rejects(api.login(), (e) => {
        assert.ok(e instanceof WxgateError);
        assert.deepEqual([e.status, e.code, e.errcode, e.retryAfter], [status, wxcode, errcode, retryAfter]);
        return true;
      });
      assert.equal(api.sessionId(), '', 'no session kept');
    });
  }

  test('a 429 while a request logs in is surfaced once, not retried in a loop', async () => {
    const { wx, api } = setup();
    wx.nextCodes.push('err-45011-g');
    await assert.rejects(api.request({ url: '/me' }), (e) => e.status === 429 && e.retryAfter === 1);
    assert.equal(wx.logins, 1);
    assert.equal(wx.requests, 1, 'the login; no retry, and no request without a session');
  });
});

describe('a gateway serving two mini-programs', () => {
  const SECOND = 'wxclienttest0002';
  let two;
  before(async () => {
    two = await startGateway({}, `[[apps]]\nappid = "${SECOND}"\nmode = "mock"\n`);
  });
  after(async () => {
    await two.stop();
  });

  test('the client names its app at login, and the session is that app\'s', async () => {
    const { api } = setup({ appid: SECOND }, () => two);
    const res = await api.request({ url: '/me' });
    assert.equal(res.data.headers['x-wx-appid'], SECOND);
  });

  test('by default the app comes from wx.getAccountInfoSync()', async () => {
    const wx = createWx({ user: `acct-info-${process.pid}`, appid: SECOND });
    wx.getAccountInfoSync = () => ({ miniProgram: { appId: SECOND, envVersion: 'develop' } });
    const api = createClient({ baseUrl: two.baseUrl, wx });
    const res = await api.request({ url: '/me' });
    assert.equal(res.data.headers['x-wx-appid'], SECOND);
  });

  test('a login that names no app is refused with unknown_app', async () => {
    const { api } = setup({}, () => two);
    await assert.rejects(api.login(), (e) => e.status === 400 && e.code === 'unknown_app');
  });
});

describe('a gateway configured otherwise', () => {
  let other;
  before(async () => {
    other = await startGateway({ routes: { prefix: '"/gw"' }, session: { header: '"X-Token"' } });
  });
  after(async () => {
    await other.stop();
  });

  test('the route prefix and the header name follow the options', async () => {
    const { wx, api } = setup({ prefix: '/gw', sessionHeader: 'X-Token' }, () => other);
    const res = await api.request({ url: '/me' });
    assert.equal(res.statusCode, 200);
    assert.match(res.data.headers['x-wx-openid'], /^o/);
    const number = await api.phone('button-code-2');
    assert.match(number.phoneNumber, /^138/);
    const profile = await api.decrypt({ getData: () => wx.encrypted({ nickName: 'Gw' }) });
    assert.equal(profile.nickName, 'Gw');
  });
});

describe("the backend's answers are its own", () => {
  for (const status of [401, 409, 429, 503]) {
    test(`a backend ${status} with a wxgate-looking body is sent once and returned`, async () => {
      const { wx, api } = setup();
      await api.login();
      const path = `/looks-like/${status}`;
      const before = gateway.hits(path);
      const res = await api.request({ url: path, method: 'POST', data: { pay: 1 } });
      assert.equal(res.statusCode, status);
      assert.equal(res.data.message, 'the backend, not wxgate');
      assert.equal(gateway.hits(path) - before, 1, 'sent to the backend exactly once');
      assert.equal(wx.logins, 1, 'no re-login');
      assert.equal(res.header['x-wxgate-error'], undefined);
    });
  }

  test("wxgate's own answers carry its mark, and only they are acted on", async () => {
    const { wx, api } = setup();
    wx.setStorageSync('wxgate_session_id', 'no-such-session-aaaaaaaaaaaaaaaaaaaaaaaaaaa');
    const res = await api.request({ url: '/orders/1' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.logins, 1);
    assert.equal(wx.sent[0].url.endsWith('/orders/1'), true);
    const first = await new Promise((resolve) =>
      wx.request({ url: `${gateway.baseUrl}/orders/1`, header: { 'X-Session-Id': 'no-such' }, success: resolve }),
    );
    assert.equal(first.header['x-wxgate-error'], 'session_invalid');
  });
});

describe("wx.request's options pass through", () => {
  test('every option the library does not own arrives at wx.request', async () => {
    const { wx, api } = setup();
    await api.login();
    const options = { url: '/me', method: 'PUT', data: 'raw', timeout: 5000, dataType: 'text', responseType: 'text', enableHttp2: true, enableCache: true, enableChunked: false, enableQuic: false };
    const res = await api.request(options);
    const sent = wx.sent[wx.sent.length - 1];
    for (const key of Object.keys(options).filter((k) => k !== 'url')) assert.deepEqual(sent[key], options[key], key);
    assert.equal(typeof res.data, 'string', 'dataType text: not parsed');
    assert.equal(JSON.parse(res.data).method, 'PUT');
    assert.equal(res.errMsg, 'request:ok');
    assert.deepEqual(res.cookies, []);
  });

  test('timeout is honoured', async () => {
    const { api } = setup();
    await api.login();
    await assert.rejects(api.request({ url: '/slow?ms=2000', timeout: 200 }), (e) => e instanceof WxgateError && e.code === 'network' && /timeout/.test(e.errMsg));
  });

  test('an arraybuffer body and the cookies come back as wx.request gives them', async () => {
    const { api } = setup();
    await api.login();
    const res = await api.request({ url: '/bytes', responseType: 'arraybuffer' });
    assert.ok(res.data instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(res.data)], [0, 1, 2, 3, 250, 251, 252, 253]);
    assert.deepEqual(res.cookies, ['seen=1; Path=/']);
  });
});

describe('encrypted data is fetched after the login whose key decrypts it', () => {
  async function openidOf(api) {
    return (await api.request({ url: '/me' })).data.headers['x-wx-openid'];
  }

  test('the gateway lost the session: log in, fetch again, then decrypt', async () => {
    const { wx, api } = setup();
    await api.login();
    await gateway.adminLogout(await openidOf(api));
    wx.events.length = 0;
    const sentKeys = [];
    const profile = await api.decrypt({
      getData: () => {
        sentKeys.push(wx.currentCode);
        return wx.encrypted({ nickName: 'Lin' });
      },
    });
    assert.equal(profile.nickName, 'Lin');
    assert.deepEqual(wx.events, ['checkSession', 'getData', 'login', 'getData']);
    assert.equal(wx.logins, 2);
    // The data that succeeded was made with the key of the login before it.
    assert.equal(sentKeys[1], wx.currentCode);
    assert.notEqual(sentKeys[0], sentKeys[1]);
  });

  test('the plain form after a lost session: a login, then a clear session_invalid', async () => {
    const { wx, api } = setup();
    await api.login();
    await gateway.adminLogout(await openidOf(api));
    const data = wx.encrypted({ nickName: 'x' });
    await assert.rejects(api.decrypt(data), (e) => e instanceof WxgateError && e.status === 401 && e.code === 'session_invalid' && /fetch the data again/.test(e.message));
    assert.equal(wx.logins, 2, 'logged in, so the data fetched next is for the new key');
    const again = await api.decrypt(wx.encrypted({ nickName: 'again' }));
    assert.equal(again.nickName, 'again');
  });
});

describe('a gateway with its own route paths', () => {
  let custom;
  before(async () => {
    custom = await startGateway({
      routes: { login: '"/signin"', logout: '"/signout"', decrypt: '"/_wxgate/dec"', phone: '"/_wxgate/tel"', session: '"/_wxgate/check"' },
    });
  });
  after(async () => {
    await custom.stop();
  });

  test('every route is followed from the options that mirror [routes]', async () => {
    const routes = { login: '/signin', logout: '/signout', decrypt: '/_wxgate/dec', phone: '/_wxgate/tel', session: '/_wxgate/check' };
    const { wx, api } = setup({ routes }, () => custom);
    const profile = await api.decrypt({ getData: () => wx.encrypted({ nickName: 'Route' }) });
    assert.equal(profile.nickName, 'Route');
    assert.match((await api.phone('button-code-3')).phoneNumber, /^138/);
    assert.equal((await api.checkSession()).valid, true);
    const id = api.sessionId();
    await api.logout();
    const res = await new Promise((resolve) =>
      wx.request({ url: `${custom.baseUrl}/me`, header: { 'X-Session-Id': id }, success: resolve }),
    );
    assert.equal(res.statusCode, 401);
    const paths = wx.sent.map((o) => new URL(o.url).pathname);
    for (const path of Object.values(routes)) assert.ok(paths.includes(path), `${path} in ${paths}`);
  });
});
