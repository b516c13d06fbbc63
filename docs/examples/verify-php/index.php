<?php
// A PHP backend that checks who the caller is instead of trusting a header:
// it verifies wxgate's identity assertion (X-Wxgate-Assertion, an ES256 JWT)
// with PHP's own openssl extension, no library needed. (With Composer,
// firebase/php-jwt does the same: JWT::decode($token, JWK::parseKeySet($jwks)).)
// Run: WXGATE_JWKS_URL=http://wxgate:9090/jwks.json WXGATE_ISSUER=https://m.example.com
//      WXGATE_AUDIENCE=orders php -S 127.0.0.1:3000 index.php
//
// tests/it/assertion.rs runs this file as wxgate's upstream.

/** The claims of a valid assertion, or null. */
function wxgate_caller(?string $token): ?array
{
    if ($token === null || substr_count($token, '.') !== 2) {
        return null;
    }
    [$h, $p, $s] = explode('.', $token);
    $header = json_decode(b64url($h), true);
    $claims = json_decode(b64url($p), true);
    // ES256 only: never "none", never HS256 keyed with the public key.
    if (!is_array($header) || !is_array($claims) || ($header['alg'] ?? '') !== 'ES256') {
        return null;
    }
    $key = jwks_key($header['kid'] ?? '');
    $signature = b64url($s);
    if ($key === null || strlen($signature) !== 64) {
        return null;
    }
    // JWS carries r || s (RFC 7518 §3.4); openssl wants them DER-encoded.
    if (openssl_verify("$h.$p", der_signature($signature), $key, OPENSSL_ALGO_SHA256) !== 1) {
        return null;
    }
    $now = time();
    $audience = (array) ($claims['aud'] ?? []);
    if (($claims['iss'] ?? '') !== getenv('WXGATE_ISSUER')
        || !in_array(getenv('WXGATE_AUDIENCE'), $audience, true)
        || ($claims['exp'] ?? 0) < $now - 5) {
        return null;
    }
    return $claims;
}

/** The published key named `kid`, as a PEM public key (the key set cached 5 minutes). */
function jwks_key(string $kid): ?string
{
    $cache = sys_get_temp_dir() . '/wxgate-jwks-' . md5(getenv('WXGATE_JWKS_URL')) . '.json';
    $fresh = is_file($cache) && filemtime($cache) > time() - 300;
    for ($attempt = 0; $attempt < 2; $attempt++) {
        if (!$fresh) {
            $text = @file_get_contents(getenv('WXGATE_JWKS_URL'));
            if ($text === false) {
                return null;
            }
            file_put_contents($cache, $text);
        }
        foreach (json_decode(file_get_contents($cache), true)['keys'] ?? [] as $jwk) {
            if (($jwk['kid'] ?? '') === $kid && ($jwk['crv'] ?? '') === 'P-256') {
                // SubjectPublicKeyInfo of a P-256 key: a fixed prefix, then 04 || x || y.
                $der = hex2bin('3059301306072a8648ce3d020106082a8648ce3d030107034200')
                    . "\x04" . b64url($jwk['x']) . b64url($jwk['y']);
                return "-----BEGIN PUBLIC KEY-----\n" . chunk_split(base64_encode($der), 64, "\n")
                    . "-----END PUBLIC KEY-----\n";
            }
        }
        $fresh = false; // an unknown kid: a rotated key, fetch the set again once
    }
    return null;
}

function b64url(string $text): string
{
    return (string) base64_decode(strtr($text, '-_', '+/'), true);
}

/** r || s as an ASN.1 SEQUENCE of two INTEGERs. */
function der_signature(string $rs): string
{
    $int = function (string $bytes): string {
        $bytes = ltrim($bytes, "\x00");
        if ($bytes === '' || ord($bytes[0]) > 0x7f) {
            $bytes = "\x00" . $bytes;
        }
        return "\x02" . chr(strlen($bytes)) . $bytes;
    };
    $body = $int(substr($rs, 0, 32)) . $int(substr($rs, 32));
    return "\x30" . chr(strlen($body)) . $body;
}

$claims = wxgate_caller($_SERVER['HTTP_X_WXGATE_ASSERTION'] ?? null);
header('Content-Type: application/json');
if ($claims === null) {
    http_response_code(401);
    echo json_encode(['error' => 'invalid assertion', 'path' => $_SERVER['REQUEST_URI']]);
    return;
}
// sub: the bound business user id when there is one, else the openid.
echo json_encode(['user' => $claims['sub'], 'claims' => $claims, 'path' => $_SERVER['REQUEST_URI']]);
