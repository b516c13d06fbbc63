// Starts the REAL wxgate binary in mock mode on free ports, with a small
// echo backend in front of which it runs. The backend answers with what it
// received; `/status/N` with status N; `/looks-like/N` with status N and
// a body (and Retry-After) just like one of wxgate's, but without its
// mark; `/slow?ms=N` after N ms; `/bytes` with eight raw bytes and a cookie.
// It counts the requests it got per path (`backend.hits`).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../../..');
const BIN = process.env.WXGATE_BIN || path.join(ROOT, 'target/debug/wxgate');
const APPID = 'wxclienttest0001';

const LOOKALIKE = { 401: 'session_invalid', 409: 'session_key_stale', 429: 'login_rate_limited', 503: 'overloaded' };

function echoBackend() {
  const hits = new Map();
  const server = http.createServer((req, res) => {
    const path = req.url.split('?')[0];
    hits.set(path, (hits.get(path) || 0) + 1);
    const status = /^\/status\/(\d{3})$/.exec(path);
    const lookalike = /^\/looks-like\/(\d{3})$/.exec(path);
    const slow = /^\/slow$/.test(path) && Number(new URL(req.url, 'http://x').searchParams.get('ms'));
    const echo = () => JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
    if (lookalike) {
      const n = Number(lookalike[1]);
      res.writeHead(n, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ code: LOOKALIKE[n], message: 'the backend, not wxgate' }));
    } else if (path === '/bytes') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'set-cookie': 'seen=1; Path=/' });
      res.end(Buffer.from([0, 1, 2, 3, 250, 251, 252, 253]));
    } else if (slow) {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(echo());
      }, slow);
    } else {
      res.writeHead(status ? Number(status[1]) : 200, { 'content-type': 'application/json' });
      res.end(echo());
    }
  });
  server.hits = hits;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * @param {Record<string, Record<string, string>>} [extra] more config: table → key → TOML value
 * @param {string} [appended] TOML written after the tables (`[[apps]]`)
 */
async function startGateway(extra = {}, appended = '') {
  if (!fs.existsSync(BIN)) {
    throw new Error(`no wxgate binary at ${BIN}: run \`cargo build\` first (or set WXGATE_BIN)`);
  }
  const backend = await echoBackend();
  const tables = {
    server: { listen: '"127.0.0.1:0"', threads: '1' },
    admin: { listen: '"127.0.0.1:0"' },
    upstream: { url: `"http://127.0.0.1:${backend.address().port}"` },
    wechat: { mode: '"mock"', appid: `"${APPID}"`, timeout: '"300ms"' },
    log: { format: '"json"' },
  };
  for (const [table, keys] of Object.entries(extra)) tables[table] = Object.assign(tables[table] || {}, keys);
  const text = Object.entries(tables)
    .map(([table, keys]) => `[${table}]\n` + Object.entries(keys).map(([k, v]) => `${k} = ${v}`).join('\n'))
    .join('\n') + '\n' + appended;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxgate-client-'));
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, text);
  const child = spawn(BIN, ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const logs = [];
  const addrs = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wxgate did not start:\n${logs.join('\n')}`)), 20000);
    let rest = '';
    child.stderr.on('data', (chunk) => {
      rest += chunk;
      const lines = rest.split('\n');
      rest = lines.pop();
      for (const line of lines) {
        logs.push(line);
        if (line.includes('wxgate listening')) {
          const json = JSON.parse(line);
          clearTimeout(timer);
          resolve({ addr: json.addr, admin: json.admin });
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`wxgate exited with ${code}:\n${logs.join('\n')}`)));
  });
  return {
    baseUrl: `http://${addrs.addr}`,
    adminUrl: `http://${addrs.admin}`,
    appid: APPID,
    logs,
    /** Requests the backend got for `path`. */
    hits: (path) => backend.hits.get(path) || 0,
    /** The operator's "log this user out everywhere" (the admin port). */
    async adminLogout(openid) {
      const res = await fetch(`http://${addrs.admin}/users/${openid}/logout`, { method: 'POST' });
      if (!res.ok) throw new Error(`admin logout: ${res.status}`);
    },
    /** One sample of the admin port's /metrics, 0 when absent. */
    async metric(series) {
      const text = await (await fetch(`http://${addrs.admin}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(series + ' '));
      return line ? Number(line.slice(series.length + 1)) : 0;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.on('exit', resolve)));
      backend.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startGateway };
