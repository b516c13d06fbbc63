// A backend that checks who the caller is instead of trusting a header:
// it verifies wxgate's identity assertion (X-Wxgate-Assertion, an ES256
// JWT) against wxgate's published keys with jose, then serves the user the
// token names. Run: npm ci && WXGATE_JWKS_URL=http://wxgate:9090/jwks.json
// WXGATE_ISSUER=https://m.example.com WXGATE_AUDIENCE=orders node server.mjs
//
// tests/it/assertion.rs runs this file as wxgate's upstream.
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const jwks = createRemoteJWKSet(new URL(process.env.WXGATE_JWKS_URL), {
  // wxgate's key set may be cached 5 minutes (its Cache-Control); a token
  // with an unknown kid fetches it again at most every 30 s.
  cacheMaxAge: 300_000,
  cooldownDuration: 30_000,
});
const issuer = process.env.WXGATE_ISSUER ?? 'wxgate';
const audience = process.env.WXGATE_AUDIENCE;

/** The verified claims of the request's assertion; throws when there is none or it is not wxgate's. */
async function caller(req) {
  const token = req.headers['x-wxgate-assertion'];
  if (typeof token !== 'string') throw Object.assign(new Error('no assertion'), { code: 'ERR_NO_ASSERTION' });
  const { payload } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: ['ES256'], // never "none", never HS256 with the public key
    clockTolerance: 5,
  });
  return payload;
}

const server = http.createServer(async (req, res) => {
  try {
    const claims = await caller(req);
    // claims.sub: the bound business user id when there is one, else the openid.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ user: claims.sub, claims, path: req.url }));
  } catch (e) {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: e.code ?? 'ERR_INVALID', path: req.url }));
  }
});
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
