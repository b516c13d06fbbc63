// Verifies one assertion by hand: node verify.mjs JWKS_URL ISSUER AUDIENCE < token
// Prints {"header", "claims"} and exits 0 when jose accepts it; prints the
// error's code and exits 1 otherwise. (tests/it/assertion.rs checks every
// token wxgate signs with it: an independent JWT library.)
import { createRemoteJWKSet, jwtVerify, calculateJwkThumbprint } from 'jose';
import { readFileSync } from 'node:fs';

const [jwksUrl, issuer, audience] = process.argv.slice(2);
const token = readFileSync(0, 'utf8').trim();
try {
  const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(jwksUrl)), {
    issuer,
    audience,
    algorithms: ['ES256'],
  });
  // The kid wxgate names is the key's RFC 7638 thumbprint.
  const keys = await (await fetch(jwksUrl)).json();
  const thumbprints = await Promise.all(keys.keys.map((k) => calculateJwkThumbprint(k, 'sha256')));
  console.log(JSON.stringify({ header: protectedHeader, claims: payload, thumbprints, kids: keys.keys.map((k) => k.kid) }));
} catch (e) {
  console.log(JSON.stringify({ error: e.code ?? e.message }));
  process.exit(1);
}
