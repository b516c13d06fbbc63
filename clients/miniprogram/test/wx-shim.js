// A small `wx` for node: the mini-program APIs the client uses, over real
// HTTP, and a WeChat that behaves as wxgate's mock mode documents
// (src/wechat/mock.rs): wx.login() hands out `USER#N`, every login a new
// code and so a new session_key, base64(SHA-256("wxgate-mock-key:" + code)[..16]);
// `encrypted()` encrypts user data with the user's CURRENT key, as WeChat does.
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

function mockKey(code) {
  return crypto.createHash('sha256').update('wxgate-mock-key:' + code).digest().subarray(0, 16);
}

function createWx({ user, appid }) {
  const storage = new Map();
  const shim = {
    /** Every wx.login / getData / checkSession, in order. */
    events: [],
    logins: 0,
    /** Codes wx.login hands out before the usual `USER#N` (magic error codes). */
    nextCodes: [],
    /** What wx.checkSession answers. */
    sessionValid: true,
    currentCode: null,
    requests: 0,

    login({ success, fail }) {
      shim.logins += 1;
      shim.events.push('login');
      const code = shim.nextCodes.shift() || `${user}#${shim.logins}`;
      if (!code.startsWith('err-') && !code.startsWith('slow-')) shim.currentCode = code;
      setImmediate(() => (code === 'fail' ? fail({ errMsg: 'login:fail' }) : success({ code })));
    },

    checkSession({ success, fail }) {
      shim.events.push('checkSession');
      setImmediate(() => (shim.sessionValid ? success({}) : fail({ errMsg: 'checkSession:fail' })));
    },

    /** A wx.login elsewhere (another page, a plug-in): the key rotates, wxgate does not know. */
    rotateKey() {
      shim.logins += 1;
      shim.currentCode = `${user}#${shim.logins}`;
    },

    /** User data as WeChat gives it: AES-128-CBC with the current key, watermarked. */
    encrypted(payload) {
      shim.events.push('getData');
      const iv = crypto.randomBytes(16);
      const cipher = crypto.createCipheriv('aes-128-cbc', mockKey(shim.currentCode), iv);
      const plain = JSON.stringify(Object.assign({}, payload, { watermark: { appid, timestamp: Math.floor(Date.now() / 1000) } }));
      const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return { encryptedData: data.toString('base64'), iv: iv.toString('base64') };
    },

    /** Every wx.request's options, as the library passed them. */
    sent: [],

    // As wx.request documents it: `timeout` (ms, default 60000), `dataType`
    // (`json`: parse, anything else: text), `responseType` (`text` or
    // `arraybuffer`); success gets {data, statusCode, header, cookies, errMsg}.
    request(options) {
      const { url, method = 'GET', data, header = {}, success, fail, timeout = 60000 } = options;
      shim.requests += 1;
      shim.sent.push(options);
      const body =
        data === undefined ? undefined : typeof data === 'string' || data instanceof ArrayBuffer ? Buffer.from(data) : JSON.stringify(data);
      const headers = Object.assign({}, header);
      if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
      let done = false;
      const finish = (f) => {
        if (!done) {
          done = true;
          f();
        }
      };
      const req = http.request(url, { method, headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          let parsed;
          if (options.responseType === 'arraybuffer') {
            parsed = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
          } else {
            parsed = bytes.toString('utf8');
            if ((options.dataType || 'json') === 'json') {
              try {
                parsed = JSON.parse(parsed);
              } catch (_) {
                // wx.request leaves a body that is not JSON as text
              }
            }
          }
          const cookies = [].concat(res.headers['set-cookie'] || []);
          finish(() => success({ statusCode: res.statusCode, data: parsed, header: res.headers, cookies, errMsg: 'request:ok' }));
        });
      });
      req.setTimeout(timeout, () => {
        req.destroy();
        finish(() => fail({ errMsg: 'request:fail timeout' }));
      });
      req.on('error', (e) => finish(() => fail({ errMsg: `request:fail ${e.message}` })));
      if (body !== undefined) req.write(body);
      req.end();
    },

    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => storage.set(key, value),
    removeStorageSync: (key) => storage.delete(key),
  };
  return shim;
}

module.exports = { createWx };
