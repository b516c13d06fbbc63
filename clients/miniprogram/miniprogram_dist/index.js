/**
 * wxgate's mini-program client: the client half of the session_key method.
 *
 * - One login in flight at a time, shared by every caller: each wx.login()
 *   may rotate the user's session_key at WeChat, so two at once race.
 * - The server's session id lives in storage and goes out as X-Session-Id.
 *   No request leaves without one: the first logs in first.
 * - wxgate marks every answer it makes itself with `X-Wxgate-Error: <code>`
 *   (and removes a backend's copy). Only marked answers are wxgate's: a
 *   marked 401 `session_invalid` (the backend never saw the request) means
 *   log in again and send it once more; a marked 429 / 503 is thrown as a
 *   WxgateError with its Retry-After. Anything unmarked is the backend's,
 *   returned untouched whatever its body, and never sent twice.
 * - Encrypted data is fetched only after the login whose session_key will
 *   decrypt it: wx.checkSession() first (log in when it fails); on wxgate's
 *   401 or 409 `session_key_stale`, log in, fetch the data again, retry once.
 * - wx.request's own options (timeout, dataType, responseType, enableHttp2,
 *   enableCache, enableChunked, …) pass through; the answer is
 *   wx.request's own success object.
 *
 * CommonJS, no dependencies: works in the mini-program runtime (npm build)
 * and in node with a `wx` object passed in.
 * @module wxgate-miniprogram
 */
'use strict';

/** The header on every answer wxgate makes itself, naming its code. */
const MARK = 'x-wxgate-error';

/** An error answered by wxgate (or a failed request). */
class WxgateError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request itself failed
   * @param {string} code wxgate's error code (`session_invalid`, `code_used`, …), `network` for a failed request
   * @param {string} message
   * @param {{errcode?: number, retryAfter?: number, errMsg?: string}} [extra]
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
    /** wx.request's errMsg, for a request that failed (`network`). */
    this.errMsg = extra.errMsg;
  }
}

function headerOf(headers, name) {
  const wanted = name.toLowerCase();
  for (const key of Object.keys(headers || {})) {
    if (key.toLowerCase() === wanted) return headers[key];
  }
  return undefined;
}

/** wxgate's code when wxgate itself made the answer (its mark), else undefined. */
function wxgateCode(res) {
  const mark = headerOf(res && res.header, MARK);
  return typeof mark === 'string' && mark !== '' ? mark : undefined;
}

function toError(res) {
  const data = res.data && typeof res.data === 'object' && !(res.data instanceof ArrayBuffer) ? res.data : {};
  const retry = Number(headerOf(res.header, 'retry-after'));
  const code = wxgateCode(res) || `http_${res.statusCode}`;
  return new WxgateError(res.statusCode, code, data.message || `HTTP ${res.statusCode}`, {
    errcode: data.errcode,
    retryAfter: Number.isFinite(retry) ? retry : undefined,
  });
}

/** This mini-program's AppID, when the base library can tell (2.2.2+). */
function ownAppid(wx) {
  try {
    const info = typeof wx.getAccountInfoSync === 'function' ? wx.getAccountInfoSync() : null;
    return (info && info.miniProgram && info.miniProgram.appId) || undefined;
  } catch (e) {
    return undefined;
  }
}

/** The gateway's routes, as its `[routes]` names them. */
function routesOf(o) {
  const given = o.routes || {};
  const prefix = given.prefix || o.prefix || '/_wxgate';
  return {
    login: given.login || o.loginPath || '/login',
    logout: given.logout || o.logoutPath || '/logout',
    decrypt: given.decrypt || `${prefix}/decrypt`,
    phone: given.phone || `${prefix}/phone`,
    session: given.session || `${prefix}/session`,
  };
}

/** The wx.request options the library sets itself; every other one passes through. */
const OWNED = ['url', 'header', 'success', 'fail', 'complete'];

/**
 * @param {object} options see index.d.ts (`ClientOptions`)
 */
function createClient(options) {
  const o = Object.assign({ sessionHeader: 'X-Session-Id', storageKey: 'wxgate_session_id' }, options);
  if (!o.baseUrl) throw new TypeError('createClient: baseUrl is required');
  // eslint-disable-next-line no-undef
  const wx = o.wx || (typeof globalThis !== 'undefined' ? globalThis.wx : undefined);
  if (!wx) throw new TypeError('createClient: no wx API (pass options.wx)');
  const routes = routesOf(o);
  let loggingIn = null;
  const appid = o.appid || ownAppid(wx);

  const sessionId = () => wx.getStorageSync(o.storageKey) || '';

  /** One wx.request: `options` as the caller gave them, to `path` on the gateway. */
  function call(options, path, header) {
    return new Promise((resolve, reject) => {
      const passed = {};
      for (const key of Object.keys(options || {})) if (!OWNED.includes(key)) passed[key] = options[key];
      wx.request(
        Object.assign(passed, {
          url: o.baseUrl + path,
          header,
          success: resolve,
          fail: (e) => {
            const errMsg = (e && e.errMsg) || 'request:fail';
            reject(new WxgateError(0, 'network', errMsg, { errMsg }));
          },
        }),
      );
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
        const data = appid ? { code, appid } : { code };
        const res = await call({ method: 'POST', data }, routes.login, { 'content-type': 'application/json' });
        if (res.statusCode !== 200 || wxgateCode(res) || !res.data || !res.data.session_id) throw toError(res);
        wx.setStorageSync(o.storageKey, res.data.session_id);
        return res.data.session_id;
      })().finally(() => {
        loggingIn = null;
      });
    }
    return loggingIn;
  }

  /** A session id to send: the stored one, else one from a login. */
  async function session() {
    if (loggingIn) return loggingIn;
    return sessionId() || login();
  }

  /**
   * wx.request through the gateway, with the session. Resolves wx.request's
   * own success object; rejects a WxgateError for wxgate's marked 401 after
   * one fresh login and re-send, and for its marked 429 / 503.
   */
  async function request(options) {
    let resent = false;
    for (;;) {
      const sent = await session();
      const header = Object.assign({}, options.header, { [o.sessionHeader]: sent });
      const res = await call(options, options.url, header);
      const code = wxgateCode(res);
      if (code === 'session_invalid' && !resent) {
        // wxgate refused it before the backend saw it: sending it again is safe.
        resent = true;
        // Another caller may have logged in since this request left.
        if (loggingIn) await loggingIn;
        else if (sessionId() === sent) await login();
        continue;
      }
      if (code && (res.statusCode === 401 || res.statusCode === 429 || res.statusCode === 503)) {
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

  /** POST to one of wxgate's own routes; its JSON answer, or a WxgateError. */
  async function post(path, data) {
    const res = await request({ url: path, method: 'POST', data, header: { 'content-type': 'application/json' } });
    if (res.statusCode !== 200 || wxgateCode(res)) throw toError(res);
    return res.data;
  }

  /**
   * Decrypts encrypted user data with the user's current session_key.
   * Pass `getData` (returns or resolves `{encryptedData, iv}`): it is called
   * only after the login whose key will decrypt the data, and again after a
   * re-login when wxgate answers 401 (the gateway lost the session) or 409
   * `session_key_stale`. With plain `{encryptedData, iv}` there is nothing
   * to fetch again: those answers log in, then reject (`session_invalid` or
   * `session_key_stale`) for the caller to fetch the data again and retry.
   */
  async function decrypt(options) {
    await ensureFreshSessionKey();
    for (let attempt = 0; ; attempt += 1) {
      const d = options.getData ? await options.getData() : options;
      const body = { encryptedData: d.encryptedData, iv: d.iv };
      const sent = await session();
      const res = await call(
        { method: 'POST', data: body },
        routes.decrypt,
        { 'content-type': 'application/json', [o.sessionHeader]: sent },
      );
      const code = wxgateCode(res);
      if (res.statusCode === 200 && !code) return res.data;
      const relogin = code === 'session_invalid' || code === 'session_key_stale';
      if (!relogin || attempt > 0) throw toError(res);
      // The data was made for a login that is over: log in first, then fetch it again.
      if (loggingIn) await loggingIn;
      else if (sessionId() === sent) await login();
      if (!options.getData) {
        const error = toError(res);
        error.message =
          'the encrypted data was fetched for a login that is over: a new login is done; ' +
          'fetch the data again and call decrypt once more (or pass getData)';
        throw error;
      }
    }
  }

  /** The phone number behind a getPhoneNumber button's `e.detail.code`. */
  function phone(code) {
    return post(routes.phone, { code });
  }

  /** Whether the gateway still holds the user's current session_key (`routes.session`). */
  async function checkSession() {
    const res = await request({ url: routes.session, method: 'GET' });
    if (res.statusCode !== 200 || wxgateCode(res)) throw toError(res);
    return res.data;
  }

  /** Ends this session at the gateway and forgets it here. */
  async function logout() {
    const sent = sessionId();
    wx.removeStorageSync(o.storageKey);
    if (sent) await call({ method: 'POST' }, routes.logout, { [o.sessionHeader]: sent });
  }

  return { login, request, ensureFreshSessionKey, decrypt, phone, checkSession, logout, sessionId };
}

module.exports = { createClient, WxgateError, MARK };
