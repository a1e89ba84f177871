/**
 * The status page in a real browser: Debian's chromium driven by playwright-core (headless, no
 * browser download). The page loads with credentials, shows a tunnel when a client binds, drops
 * it when the client leaves, logs no console error, and a screenshot of each state is kept in
 * test-artifacts/ (gitignored).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { ARTIFACTS, NEEDS_CHROMIUM, launchChromium, watchPage } from '../helpers/browser';
import { apiCall, apiPort } from '../helpers/api';
import { Cleanup, TID, httpRequest, startHttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

describe('status page in chromium', { skip: NEEDS_CHROMIUM }, () => {
  let server: BurrowProcess;
  let tunnelPort: number;
  let port: number;
  let browser: Browser;
  let page: Page;
  let problems: string[] = [];

  before(async () => {
    server = burrow(
      ['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.test', '-api', 'admin:pw-3f1@127.0.0.1:0?pathPrefix=/ops'],
      { name: 'server' },
    );
    tunnelPort = await server.listeningPort();
    port = await apiPort(server);
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    cleanup.fn(() => browser.close());
    const context = await browser.newContext({ httpCredentials: { username: 'admin', password: 'pw-3f1' } });
    page = await context.newPage();
    problems = watchPage(page);
  });

  it('is refused without credentials', async () => {
    assert.equal((await apiCall(port, 'GET', '/ops/')).status, 401);
  });

  it('loads, shows a tunnel when a client binds, and drops it when the client leaves', async () => {
    const res = await page.goto(`http://127.0.0.1:${port}/ops`);
    assert.equal(res?.status(), 200);
    assert.ok(page.url().endsWith('/ops/'), page.url());
    assert.equal(await page.title(), 'burrow status');
    await page.locator('#conn.live').waitFor({ timeout: 15_000 });
    await page.locator('#tunnels td.empty').waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#tunnel-count').textContent(), '0');
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-empty.png'), fullPage: true });

    const web = await startHttpService('web');
    cleanup.add(web);
    const client = burrow(['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${tunnelPort}?tunnel.id=${TID.public}&tunnel.weight=7`], {
      name: 'client',
    });
    await client.tunnelCreated({ timeoutMs: 20_000 });
    const row = page.locator('#tunnels tbody tr', { hasText: TID.public });
    await row.waitFor({ timeout: 15_000 });
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[0], TID.public);
    assert.equal(cells[4], 'tcp');
    assert.equal(cells[5], '7');
    assert.match(cells[3]!, /^127\.0\.0\.1:\d+$/);
    assert.match(cells[9]!, /^[0-9a-f]{16}$/);
    assert.equal(await page.locator('#tunnel-count').textContent(), '1');
    await page.locator('#names tbody tr', { hasText: `${cells[9]}.example.test` }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-tunnel.png'), fullPage: true });

    // Traffic: a routed request and one for an unknown host through the entry point show up in
    // the entry point's counters, the requests by status and the recent errors.
    const ep = await server.entrypointPort();
    assert.equal((await httpRequest(ep, { host: `${cells[9]}.example.test`, path: '/seen', headers: { Connection: 'close' } })).status, 200);
    assert.equal((await httpRequest(ep, { host: 'nobody.example.test', headers: { Connection: 'close' } })).status, 502);
    await page.locator('#codes tbody tr', { hasText: '502' }).waitFor({ timeout: 15_000 });
    await page.locator('#codes tbody tr', { hasText: '200' }).waitFor({ timeout: 15_000 });
    await page.locator('#errors tbody tr', { hasText: 'HTTP 502 x1' }).waitFor({ timeout: 15_000 });
    const epRow = await page.locator('#entrypoints tbody tr', { hasText: 'service-0-ep-' }).locator('td').allTextContents();
    assert.ok(Number(epRow[2]) >= 2, `entry point connections ${epRow[2]}`);
    // The tunnel's detail view: its connector with its bytes.
    assert.equal(await page.locator('#detail').isHidden(), true);
    await page.locator('#tunnels a.tunnel-link', { hasText: TID.public }).click();
    await page.locator('#detail').waitFor({ state: 'visible', timeout: 15_000 });
    assert.equal(await page.locator('#detail-id').textContent(), TID.public);
    const detail = await page.locator('#detail-conns tbody tr').first().locator('td').allTextContents();
    assert.equal(detail[0], cells[2]);
    assert.match(detail[5]!, /^\d+(\.\d)? (B|KiB|MiB)$/);
    assert.notEqual(detail[5], '0 B', 'bytes sent to the connector');
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-detail.png'), fullPage: true });

    await client.kill('SIGKILL');
    await row.waitFor({ state: 'detached', timeout: 20_000 });
    assert.equal(await page.locator('#tunnel-count').textContent(), '0');
    await page.locator('#tunnels td.empty').waitFor({ timeout: 15_000 });
    await page.locator('#errors tbody tr', { hasText: 'went down' }).waitFor({ timeout: 15_000 });
    assert.equal(await page.locator('#detail').isHidden(), true, 'the detail view closes with its tunnel');
    await page.screenshot({ path: path.join(ARTIFACTS, 'status-page-left.png'), fullPage: true });
    assert.ok(existsSync(path.join(ARTIFACTS, 'status-page-tunnel.png')));
    assert.deepEqual(problems, []);
  });

  it('the page is served with a content security policy and no framing', async () => {
    const r = await apiCall(port, 'GET', '/ops/', { headers: { authorization: `Basic ${Buffer.from('admin:pw-3f1').toString('base64')}` } });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-security-policy']), /script-src 'self'/);
    assert.equal(r.headers['x-frame-options'], 'DENY');
  });
});
