import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { problemFor } from '../errors.js';

/**
 * The ops console (`console/`, bundled by Vite into `dist/console`), served by the engine at `/console`. The bundle
 * is read into memory once: it is a few hundred kilobytes, and serving it must not touch the disk while the engine
 * is busy. Every path under `/console/` that is not a file of the bundle answers `index.html`, so a deep link
 * (`/console/topics/payments`) opens the view it names. Assets have content hashes in their names and are cached
 * for good; `index.html` never is, so a new build is picked up on the next load.
 */

export interface ConsoleOptions {
  /** Hide every action (redrive, skip, promote, roll back, replay, rebuild) in the console. */
  readonly readOnly?: boolean;
  /** The bundle's folder (default: `dist/console` of this package). */
  readonly dir?: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** Most bytes of bundle held in memory: a bundle larger than this is a build gone wrong. */
const MAX_BUNDLE_BYTES = 20 * 1024 * 1024;

/** `dist/console` from this module, whether it runs compiled (`dist/engine/http`) or from source (`engine/http`). */
export function defaultConsoleDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const compiled = here.endsWith(join('dist', 'engine', 'http'));
  return compiled ? resolve(here, '..', '..', 'console') : resolve(here, '..', '..', 'dist', 'console');
}

function readBundle(dir: string): Map<string, Buffer> | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const files = new Map<string, Buffer>();
  let bytes = 0;
  const walk = (folder: string): void => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const content = readFileSync(path);
        bytes += content.length;
        if (bytes > MAX_BUNDLE_BYTES) throw new RangeError(`the console bundle in ${dir} is over ${MAX_BUNDLE_BYTES} bytes`);
        files.set(relative(dir, path).split(sep).join('/'), content);
      }
    }
  };
  walk(dir);
  return files;
}

export function registerConsoleRoutes(app: FastifyInstance, options: ConsoleOptions = {}): void {
  const dir = options.dir ?? defaultConsoleDir();
  const files = readBundle(dir);
  const readOnly = options.readOnly === true;

  const send = (reply: FastifyReply, path: string, content: Buffer): FastifyReply => {
    const type = CONTENT_TYPES[extname(path)] ?? 'application/octet-stream';
    const cache = path.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    return reply.header('content-type', type).header('cache-control', cache).header('x-content-type-options', 'nosniff').send(content);
  };

  app.get('/console/config.json', async () => ({ readOnly }));

  const serve = async (path: string, reply: FastifyReply): Promise<FastifyReply> => {
    if (files === undefined) {
      const problem = problemFor('MILLRACE_HTTP_NOT_FOUND', `the console is not built: ${dir} has no index.html (run npm run build)`);
      return reply.status(problem.status).header('content-type', 'application/problem+json').send(problem);
    }
    const file = files.get(path);
    if (file !== undefined) return send(reply, path, file);
    // A missing asset is a 404 (a stale page asking for an old bundle); any other path is a view of the console.
    if (path.startsWith('assets/')) {
      const problem = problemFor('MILLRACE_HTTP_NOT_FOUND', `no console asset ${path}`);
      return reply.status(problem.status).header('content-type', 'application/problem+json').send(problem);
    }
    return send(reply, 'index.html', files.get('index.html')!);
  };

  app.get('/console', async (_request, reply) => serve('index.html', reply));
  app.get('/console/*', async (request, reply) => serve((request.params as { '*': string })['*'], reply));
  app.get('/', async (_request, reply) => reply.redirect('/console', 302));
}
