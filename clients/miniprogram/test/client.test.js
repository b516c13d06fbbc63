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

  test('without a stored session, request logs in once and retries', async () => {
    const { wx, api } = setup();
    const res = await api.request({ url: '/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.logins, 1);
    assert.equal(wx.requests, 3, '401, login, retry');
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
    assert.equal(wx.requests, 2, 'the 401, then the login; no retry');
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
