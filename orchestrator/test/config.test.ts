import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/orchestrator.config';

const good = { API_KEYS: 'shop:shop-key-0123456789abcdef', INTERNAL_API_KEY: 'internal-0123456789abcdef' };

describe('orchestrator configuration', () => {
  test('defaults fill in what is not set', () => {
    const config = loadConfig(good);
    assert.equal(config.HEARTBEAT_INTERVAL_SEC, 10);
    assert.equal(config.PORT, 8080);
    assert.equal(config.apiKeys().get('shop-key-0123456789abcdef'), 'shop');
  });

  test('one error names every bad variable and never echoes a value', () => {
    const secret = 'short key';
    try {
      loadConfig({ API_KEYS: 'nokeyhere', INTERNAL_API_KEY: secret, PORT: 'eighty', LEASE_TTL_SEC: '0', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud' });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      for (const name of ['API_KEYS', 'INTERNAL_API_KEY', 'PORT', 'LEASE_TTL_SEC', 'DATABASE_URL', 'LOG_LEVEL']) {
        assert.match(error.message, new RegExp(`\\b${name}\\b`), `names ${name}`);
      }
      assert.match(error.message, /6 variable/);
      assert.ok(!error.message.includes(secret) && !error.message.includes('nokeyhere'));
    }
  });

  test('a key listed for two owners is refused, naming the owners and not the key', () => {
    const key = 'shared-key-0123456789abcdef';
    assert.throws(
      () => loadConfig({ ...good, API_KEYS: `shop:${key}, ads:other-key-0123456789abcd, studio:${key}` }),
      (error: Error) => error instanceof ConfigError && /API_KEYS/.test(error.message) && /\bshop\b/.test(error.message)
        && /\bstudio\b/.test(error.message) && !/\bads\b/.test(error.message) && !error.message.includes(key),
    );
    // The same name twice with one key is redundant, not ambiguous.
    assert.equal(loadConfig({ ...good, API_KEYS: `shop:${key},shop:${key}` }).apiKeys().get(key), 'shop');
  });

  test('a key of two operators, or of two roles, is refused, naming the variables and not the key', () => {
    const key = 'ops-key-0123456789abcdef';
    const refused = (env: Record<string, string>, pattern: RegExp) => assert.throws(
      () => loadConfig({ ...good, ...env }),
      (error: Error) => error instanceof ConfigError && pattern.test(error.message) && !error.message.includes(key),
    );
    refused({ OPERATOR_KEYS: `alice:${key},bob:${key}` }, /OPERATOR_KEYS: one key is listed for the owners alice, bob/);
    refused({ OPERATOR_KEYS: `alice:${key}`, API_KEYS: `shop:${key}` }, /OPERATOR_KEYS: the key of operator alice is also a product key/);
    refused({ OPERATOR_KEYS: `alice:${key}`, INTERNAL_API_KEY: key }, /OPERATOR_KEYS: the key of operator alice is INTERNAL_API_KEY/);
    refused({ API_KEYS: `shop:${key}`, INTERNAL_API_KEY: key }, /API_KEYS: the key of shop is INTERNAL_API_KEY/);
    assert.equal(loadConfig({ ...good, OPERATOR_KEYS: `alice:${key}` }).operatorKeys().get(key), 'alice');
  });

  test('an owner name becomes a storage folder: it starts with a letter or digit and has no ..', () => {
    const key = 'key-0123456789abcdef0123';
    for (const name of ['shop', 'Shop.v2', '7eleven', 'a_b-c', 'x'.repeat(64)]) {
      assert.equal(loadConfig({ ...good, API_KEYS: `${name}:${key}` }).apiKeys().get(key), name, name);
    }
    for (const name of ['..', '.', '.hidden', 'a..b', 'shop..', '-shop', '_shop', 'x'.repeat(65)]) {
      assert.throws(() => loadConfig({ ...good, API_KEYS: `ok:other-key-0123456789abcd,${name}:${key}` }),
        (error: Error) => error instanceof ConfigError && /API_KEYS must be name:key pairs/.test(error.message) && !error.message.includes(key), name);
    }
  });

  test('WEBHOOK_ALLOW is read as a list of addresses and ranges; anything else is refused without echoing it', () => {
    assert.deepEqual(loadConfig(good).webhookAllow(), []);
    assert.deepEqual(loadConfig({ ...good, WEBHOOK_ALLOW: ' 127.0.0.1, 10.0.0.0/8,fd00::/16 ' }).webhookAllow(), ['127.0.0.1', '10.0.0.0/8', 'fd00::/16']);
    for (const bad of ['localhost', '10.0.0.0/33', '127.0.0.1,hooks.intranet']) {
      assert.throws(() => loadConfig({ ...good, WEBHOOK_ALLOW: bad }),
        (error: Error) => error instanceof ConfigError && /WEBHOOK_ALLOW must be a comma-separated list/.test(error.message) && !error.message.includes(bad), bad);
    }
  });

  test('the process exits 2 with that message on bad configuration', () => {
    const main = path.resolve(__dirname, '../src/main.js');
    const run = spawnSync(process.execPath, [main], { env: { PATH: process.env.PATH, INTERNAL_API_KEY: 'has a space 0123456789' }, encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /API_KEYS/);
    assert.match(run.stderr, /INTERNAL_API_KEY must not contain whitespace/);
  });
});
