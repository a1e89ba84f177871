/**
 * The status page's abuse-control buttons in chromium (playwright-core, as status-page.test.ts):
 * each button asks for confirmation, a dismissed confirm changes nothing, and an accepted one
 * acts on the real server: the client's session closes and it binds again, a name is blocked,
 * unblocked and released, a tunnel is revoked (its client refused) and restored.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { ARTIFACTS, NEEDS_CHROMIUM, launchChromium, watchPage } from '../helpers/browser';
import { apiCall, apiPort, basic } from '../helpers/api';
import { Cleanup, TID, startHttpService } from './support';

const AUTH = { authorization: basic('admin', 'pw-5e0') };
const cleanup = new Cleanup();
after(() => cleanup.run());

describe('status page buttons in chromium', { skip: NEEDS_CHROMIUM }, () => {
  let server: BurrowProcess;
  let client: BurrowProcess;
  let port: number;
  let browser: Browser;
  let page: Page;
  let problems: string[] = [];
  const dialogs: string[] = [];
  let answer = true;

  const status = async () => (await apiCall(port, 'GET', '/ops/status', { headers: AUTH })).json;
  const row = (table: string, text: string) => page.locator(`#${table} tbody tr`, { hasText: text });

  before(async () => {
    server = burrow(
      ['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.test', '-api', 'admin:pw-5e0@127.0.0.1:0?pathPrefix=/ops'],
      { name: 'server' },
    );
    const tunnelPort = await server.listeningPort();
    port = await apiPort(server);
    const web = await startHttpService('web');
    cleanup.add(web);
    client = burrow(['-L', `rtcp://hello:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${tunnelPort}?tunnel.id=${TID.public}`], {
      name: 'client',
    });
    await client.tunnelCreated({ timeoutMs: 20_000 });
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    cleanup.fn(() => browser.close());
    const context = await browser.newContext({ httpCredentials: { username: 'admin', password: 'pw-5e0' } });
    page = await context.newPage();
    problems = watchPage(page);
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void (answer ? d.accept() : d.dismiss());
    });
    await page.goto(`http://127.0.0.1:${port}/ops/`);
    await page.locator('#conn.live').waitFor({ timeout: 15_000 });
    await row('tunnels', TID.public).waitFor({ timeout: 15_000 });
  });

  it('a dismissed confirm changes nothing', async () => {
    const before = (await status()).tunnels[0].connectors[0].id;
    answer = false;
    await row('tunnels', TID.public).getByRole('button', { name: 'disconnect' }).click();
    answer = true;
    assert.match(dialogs.at(-1)!, new RegExp(`^Disconnect connector ${before} `));
    // The confirm is modal: once it is answered, nothing was sent.
    assert.equal((await status()).tunnels[0].connectors[0].id, before);
    assert.equal(server.count((l) => /disconnected by/.test(String(l.msg))), 0);
    assert.equal(await page.locator('#action').textContent(), '');
  });

  it('disconnect: the client\'s session closes and it binds again, shown live', async () => {
    const first = (await status()).tunnels[0].connectors[0].id;
    const mark = client.mark();
    await row('tunnels', first).getByRole('button', { name: 'disconnect' }).click();
    await page.locator('#action', { hasText: 'disconnect: done' }).waitFor({ timeout: 15_000 });
    await client.waitForMsg(/^accept: tunnel session closed, retrying/, { from: mark, timeoutMs: 15_000 });
    await client.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    await row('tunnels', first).waitFor({ state: 'detached', timeout: 15_000 });
    const second = (await status()).tunnels[0].connectors[0].id;
    assert.notEqual(second, first);
    await row('tunnels', second).waitFor({ timeout: 15_000 });
  });

  it('block moves the name to the blocked list; unblock and release work too', async () => {
    await row('names', 'hello.example.test').getByRole('button', { name: 'block' }).click();
    await row('blocked', 'hello.example.test').waitFor({ timeout: 15_000 });
    await row('names', 'hello.example.test').waitFor({ state: 'detached', timeout: 15_000 });
    assert.deepEqual((await status()).blockedNames.map((b: { name: string }) => b.name), ['hello']);
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-blocked.png'), fullPage: true });

    await row('blocked', 'hello.example.test').getByRole('button', { name: 'unblock' }).click();
    await row('blocked', 'hello.example.test').waitFor({ state: 'detached', timeout: 15_000 });
    assert.deepEqual((await status()).blockedNames, []);

    // The client claims it again on its next bind; then it is released from the page.
    const mark = client.mark();
    await row('tunnels', TID.public).getByRole('button', { name: 'disconnect' }).click();
    const line = await client.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    assert.match(line.msg!, /^create tunnel on hello:/);
    await row('names', 'hello.example.test').waitFor({ timeout: 15_000 });
    await row('names', 'hello.example.test').getByRole('button', { name: 'release' }).click();
    await row('names', 'hello.example.test').waitFor({ state: 'detached', timeout: 15_000 });
    assert.ok(!(await status()).names.some((n: { name: string }) => n.name === 'hello'));
  });

  it('revoke lists the tunnel as revoked and its client is refused; restore lets it back', async () => {
    const mark = client.mark();
    await row('tunnels', TID.public).getByRole('button', { name: 'revoke' }).click();
    assert.match(dialogs.at(-1)!, new RegExp(`^Revoke tunnel ${TID.public}\\?`));
    await row('revoked', TID.public).waitFor({ timeout: 15_000 });
    await page.locator('#tunnels td.empty').waitFor({ timeout: 15_000 });
    await client.waitForMsg(/^accept: .*server answered 0x03/, { from: mark, timeoutMs: 20_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-revoked.png'), fullPage: true });

    await row('revoked', TID.public).getByRole('button', { name: 'restore' }).click();
    await row('revoked', TID.public).waitFor({ state: 'detached', timeout: 15_000 });
    await client.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    await row('tunnels', TID.public).waitFor({ timeout: 15_000 });
    assert.deepEqual((await status()).revoked, []);
    assert.deepEqual(problems, []);
  });
});
