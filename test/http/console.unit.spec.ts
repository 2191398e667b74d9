/**
 * The ops console's serving (`engine/http/console-routes.ts`) through fastify's inject(): the bundle from a folder,
 * deep links answered with index.html, hashed assets cached for good, and the read-only switch the console reads.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHttpServer } from '../../engine/http/server.js';
import { EmbeddedLog } from '../../engine/log/embedded/embedded-log.js';
import { Metrics } from '../../engine/metrics/metrics.js';
import type { EngineApi } from '../../engine/runtime/status.js';
import { EmbeddedSchemaRegistry } from '../../engine/serde/embedded-registry.js';
import { tempDir } from '../support/runtime.js';

const SCHEMAS_DIR = fileURLToPath(new URL('../../schemas', import.meta.url));
const INDEX = '<!doctype html><html lang="en"><title>console</title><div id="app"></div><script src="/console/assets/app-1a2b.js"></script></html>';
const SCRIPT = 'console.log("console")';

describe('the console at /console', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let log: EmbeddedLog;
  const apps: FastifyInstance[] = [];

  async function server(console: { dir: string; readOnly?: boolean }): Promise<FastifyInstance> {
    const registry = new EmbeddedSchemaRegistry(log);
    await registry.open();
    const engine: EngineApi = {
      log,
      registry,
      metrics: new Metrics({ defaultMetrics: false }),
      schemasDir: SCHEMAS_DIR,
      topologies: () => [],
      status: async () => ({ state: 'running', startedAt: '2026-01-01T00:00:00.000Z', version: 'test', log: { kind: 'embedded', location: '' }, applications: [] }),
    };
    const app = await buildHttpServer(engine, { console });
    apps.push(app);
    return app;
  }

  beforeAll(async () => {
    dir = await tempDir('millrace-console-');
    log = new EmbeddedLog({ path: join(dir.path, 'log') });
    await log.open();
    await mkdir(join(dir.path, 'bundle', 'assets'), { recursive: true });
    await writeFile(join(dir.path, 'bundle', 'index.html'), INDEX);
    await writeFile(join(dir.path, 'bundle', 'assets', 'app-1a2b.js'), SCRIPT);
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await log?.close();
    await dir?.remove();
  });

  it('serves index.html at /console and for every view path, never cached', async () => {
    const app = await server({ dir: join(dir.path, 'bundle') });
    for (const url of ['/console', '/console/', '/console/topics/payments', '/console/lineage/predictions/0/12', '/console/models?version=v2']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toBe('text/html; charset=utf-8');
      expect(res.headers['cache-control'], url).toBe('no-cache');
      expect(res.body, url).toBe(INDEX);
    }
  });

  it('serves hashed assets with their type, cached for good, and a missing asset as a 404 problem', async () => {
    const app = await server({ dir: join(dir.path, 'bundle') });
    const res = await app.inject({ method: 'GET', url: '/console/assets/app-1a2b.js' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(res.headers['cache-control']).toContain('immutable');
    expect(res.body).toBe(SCRIPT);
    const missing = await app.inject({ method: 'GET', url: '/console/assets/app-old.js' });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(missing.json()).toMatchObject({ code: 'MILLRACE_HTTP_NOT_FOUND' });
  });

  it('does not serve files outside the bundle', async () => {
    const app = await server({ dir: join(dir.path, 'bundle') });
    for (const url of ['/console/../package.json', '/console/%2e%2e/%2e%2e/package.json', '/console/assets/..%2f..%2fpackage.json']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.body, url).not.toContain('"name"');
    }
  });

  it('tells the console whether it is read-only', async () => {
    expect((await (await server({ dir: join(dir.path, 'bundle') })).inject({ method: 'GET', url: '/console/config.json' })).json()).toEqual({ readOnly: false });
    expect((await (await server({ dir: join(dir.path, 'bundle'), readOnly: true })).inject({ method: 'GET', url: '/console/config.json' })).json()).toEqual({ readOnly: true });
  });

  it('answers a problem naming the fix when the console was not built', async () => {
    const app = await server({ dir: join(dir.path, 'nowhere') });
    const res = await app.inject({ method: 'GET', url: '/console' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'MILLRACE_HTTP_NOT_FOUND' });
    expect(res.json().detail).toContain('npm run build');
  });

  it('redirects / to the console', async () => {
    const app = await server({ dir: join(dir.path, 'bundle') });
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(302);
    expect(res.headers['location']).toBe('/console');
  });
});
