// The package as a mini-program developer installs it: `npm pack` for
// real, unpacked, and read the way WeChat DevTools' npm build reads it
// (the `miniprogram` folder, `main`, `types`), with nothing else inside.
'use strict';

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const HERE = path.resolve(__dirname, '..');

test('npm pack holds the mini-program build and the types, nothing else', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxgate-pack-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: HERE, encoding: 'utf8' });
    const [{ filename, files }] = JSON.parse(out);
    const names = files.map((f) => f.path).sort();
    assert.deepEqual(names, ['LICENSE', 'README.md', 'miniprogram_dist/index.d.ts', 'miniprogram_dist/index.js', 'package.json']);
    execFileSync('tar', ['-xzf', path.join(dir, filename), '-C', dir]);
    const root = path.join(dir, 'package');
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    // DevTools copies the `miniprogram` folder into miniprogram_npm/<name>/ and requires its index.js.
    assert.ok(fs.existsSync(path.join(root, pkg.miniprogram, 'index.js')));
    assert.ok(fs.existsSync(path.join(root, pkg.types)));
    const lib = require(path.join(root, pkg.main));
    assert.equal(typeof lib.createClient, 'function');
    assert.equal(typeof lib.WxgateError, 'function');
    // No dependency to install inside a mini-program.
    assert.equal(pkg.dependencies, undefined);
    // One licence for the whole project: the crate's, its text in the package.
    const cargo = fs.readFileSync(path.join(HERE, '..', '..', 'Cargo.toml'), 'utf8');
    assert.equal(pkg.license, /^license = "(.*)"$/m.exec(cargo)[1]);
    assert.equal(
      fs.readFileSync(path.join(root, 'LICENSE'), 'utf8'),
      fs.readFileSync(path.join(HERE, '..', '..', 'LICENSE'), 'utf8'),
    );
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    assert.match(readme.split('\n').slice(0, 5).join('\n'), /[\u4e00-\u9fff]/, 'the README opens in Chinese');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
