/**
 * wxgate's mini-program client: the client half of the session_key method.
 *
 * - One login in flight at a time, shared by every caller: each wx.login()
 *   may rotate the user's session_key at WeChat, so two at once race.
 * - The server's session id lives in storage and goes out as X-Session-Id.
 * - request(): wxgate's 401 (`session_invalid`) means log in again and
 *   retry once; requests that got their 401 with an id that has since been
 *   replaced just retry, so N concurrent 401s cost ONE login.
 * - Before anything that needs the current session_key (encrypted data),
 *   wx.checkSession(); when it fails, log in BEFORE fetching the data.
 *   A 409 `session_key_stale` means the data was encrypted with a newer key
 *   than wxgate holds: log in, fetch the data again (getData), retry once.
 * - wxgate's 429 / 503 answers are surfaced with their Retry-After, never
 *   retried in a loop. Answers of your backend are returned untouched.
 *
 * CommonJS, no dependencies: works in the mini-program runtime (npm build)
 * and in node with a `wx` object passed in.
 * @module wxgate-miniprogram
 */
'use strict';

/** Codes of wxgate's own busy answers (429 / 503): surfaced, not retried. */
const BUSY = [
  'login_rate_limited',
  'wechat_rate_limited',
  'wechat_busy',
  'overloaded',
  'store_unavailable',
  'binding_unavailable',
];

/** An error answered by wxgate (or a failed request). */
class WxgateError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request itself failed
   * @param {string} code wxgate's error code (`session_invalid`, `code_used`, …), `network` for a failed request
   * @param {string} message
   * @param {{errcode?: number, retryAfter?: number}} [extra]
   */
  constructor(status, code, message, extra = {}) {
    super(message);
    this.name = 'WxgateError';
    this.status = status;
    this.code = code;
    /** WeChat's errcode, when WeChat gave one. */
    this.errcode = extra.errcode;
    /** Seconds to wait before trying again (429 / 503). */
    this.retryAfter = extra.retryAfter;
  }
}

function headerOf(headers, name) {
  const wanted = name.toLowerCase();
  for (const key of Object.keys(headers || {})) {
    if (key.toLowerCase() === wanted) return headers[key];
  }
  return undefined;
}

/** wxgate's own JSON error answer with `code`, if `res` is one. */
function wxgateCode(res) {
  const data = res && res.data;
  return data && typeof data === 'object' && typeof data.code === 'string' ? data.code : undefined;
}

function toError(res) {
  const data = res.data && typeof res.data === 'object' ? res.data : {};
  const retry = Number(headerOf(res.header, 'retry-after'));
  return new WxgateError(res.statusCode, data.code || `http_${res.statusCode}`, data.message || `HTTP ${res.statusCode}`, {
    errcode: data.errcode,
    retryAfter: Number.isFinite(retry) ? retry : undefined,
  });
}

/**
 * @param {object} options
 * @param {string} options.baseUrl the gateway, e.g. `https://api.example.com`
 * @param {string} [options.prefix] wxgate's `routes.prefix` (`/_wxgate`)
 * @param {string} [options.loginPath] `routes.login` (`/login`)
 * @param {string} [options.logoutPath] `routes.logout` (`/logout`)
 * @param {string} [options.sessionHeader] `session.header` (`X-Session-Id`)
 * @param {string} [options.storageKey] where the session id is stored (`wxgate_session_id`)
 * @param {object} [options.wx] the `wx` API (the global one by default)
 * @param {string} [options.appid] sent with every login, for a gateway serving several
 *   mini-programs (`[[apps]]`); by default this mini-program's own, from
 *   `wx.getAccountInfoSync()` when the base library has it
 */
/** This mini-program's AppID, when the base library can tell (2.2.2+). */
function ownAppid(wx) {
  try {
    const info = typeof wx.getAccountInfoSync === 'function' ? wx.getAccountInfoSync() : null;
    return (info && info.miniProgram && info.miniProgram.appId) || undefined;
  } catch (e) {
    return undefined;
  }
}

function createClient(options) {
  const o = Object.assign(
    {
      prefix: '/_wxgate',
      loginPath: '/login',
      logoutPath: '/logout',
      sessionHeader: 'X-Session-Id',
      storageKey: 'wxgate_session_id',
    },
    options,
  );
  if (!o.baseUrl) throw new TypeError('createClient: baseUrl is required');
  // eslint-disable-next-line no-undef
  const wx = o.wx || (typeof globalThis !== 'undefined' ? globalThis.wx : undefined);
  if (!wx) throw new TypeError('createClient: no wx API (pass options.wx)');
  let loggingIn = null;
  const appid = o.appid || ownAppid(wx);

  const sessionId = () => wx.getStorageSync(o.storageKey) || '';

  function call(method, path, data, header) {
    return new Promise((resolve, reject) => {
      wx.request({
        url: o.baseUrl + path,
        method,
        data,
        header,
        success: resolve,
        fail: (e) => reject(new WxgateError(0, 'network', (e && e.errMsg) || 'request failed')),
      });
    });
  }

  function wxLogin() {
    return new Promise((resolve, reject) => {
      wx.login({
        success: (r) => resolve(r.code),
        fail: (e) => reject(new WxgateError(0, 'wx_login_failed', (e && e.errMsg) || 'wx.login failed')),
      });
    });
  }

  /** Logs in (or joins the login in flight); resolves the new session id. */
  function login() {
    if (!loggingIn) {
      loggingIn = (async () => {
        const code = await wxLogin();
        const body = appid ? { code, appid } : { code };
        const res = await call('POST', o.loginPath, body, { 'content-type': 'application/json' });
        if (res.statusCode !== 200 || !res.data || !res.data.session_id) throw toError(res);
        wx.setStorageSync(o.storageKey, res.data.session_id);
        return res.data.session_id;
      })().finally(() => {
        loggingIn = null;
      });
    }
    return loggingIn;
  }

  /**
   * wx.request through the gateway, with the session. Resolves wx.request's
   * answer ({statusCode, data, header}); rejects a WxgateError for wxgate's
   * 401 after one fresh login, and for its 429 / 503.
   */
  async function request(options) {
    let retried = false;
    for (;;) {
      const sent = sessionId();
      const header = Object.assign({}, options.header, { [o.sessionHeader]: sent });
      const res = await call(options.method || 'GET', options.url, options.data, header);
      const code = wxgateCode(res);
      if (res.statusCode === 401 && code === 'session_invalid' && !retried) {
        retried = true;
        // Another caller may have logged in since this request left.
        if (loggingIn) await loggingIn;
        else if (sessionId() === sent) await login();
        continue;
      }
      if ((res.statusCode === 401 && code === 'session_invalid') || ((res.statusCode === 429 || res.statusCode === 503) && BUSY.includes(code))) {
        throw toError(res);
      }
      return res;
    }
  }

  /** The session id, after making sure its session_key is current (wx.checkSession). */
  async function ensureFreshSessionKey() {
    if (loggingIn) return loggingIn;
    const fresh =
      sessionId() !== '' &&
      (await new Promise((resolve) => wx.checkSession({ success: () => resolve(true), fail: () => resolve(false) })));
    return fresh ? sessionId() : login();
  }

  async function wxgate(path, data) {
    const res = await request({ url: o.prefix + path, method: 'POST', data, header: { 'content-type': 'application/json' } });
    if (res.statusCode !== 200) throw toError(res);
    return res.data;
  }

  /**
   * Decrypts encrypted user data with the user's current session_key.
   * Pass `getData` (returns or resolves `{encryptedData, iv}`): it is called
   * after the key is known to be fresh, and again after a re-login if wxgate
   * answers 409 `session_key_stale`. Plain `{encryptedData, iv}` works too,
   * without that retry.
   */
  async function decrypt(options) {
    const getData = options.getData || (() => ({ encryptedData: options.encryptedData, iv: options.iv }));
    await ensureFreshSessionKey();
    const body = async () => {
      const d = await getData();
      return { encryptedData: d.encryptedData, iv: d.iv };
    };
    try {
      return await wxgate('/decrypt', await body());
    } catch (e) {
      if (!(e instanceof WxgateError) || e.code !== 'session_key_stale' || !options.getData) throw e;
      await login();
      return wxgate('/decrypt', await body());
    }
  }

  /** The phone number behind a getPhoneNumber button's `e.detail.code`. */
  function phone(code) {
    return wxgate('/phone', { code });
  }

  /** Ends this session at the gateway and forgets it here. */
  async function logout() {
    const sent = sessionId();
    wx.removeStorageSync(o.storageKey);
    if (sent) await call('POST', o.logoutPath, undefined, { [o.sessionHeader]: sent });
  }

  return { login, request, ensureFreshSessionKey, decrypt, phone, logout, sessionId };
}

module.exports = { createClient, WxgateError };
