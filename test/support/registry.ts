/**
 * Where the tests' Confluent-compatible schema registry is, for integration tests that need one.
 *
 * `test/setup/registry.global.ts` (vitest globalSetup) starts Apicurio Registry with `test/infra/schema-registry start`
 * unless `MILLRACE_SCHEMA_REGISTRY_URL` already names a registry, and hands the base URL of its Confluent API
 * (`http://127.0.0.1:18081/apis/ccompat/v7`) to the test workers both through the environment and through vitest's
 * provide/inject. Without Java or Maven on a developer's machine it records why instead, and registry tests skip with
 * that reason; with `CI=true` a missing registry is an error.
 *
 *   import { describeWithRegistry } from '../support/registry.js';
 *   describeWithRegistry('ConfluentSchemaRegistry', (url) => { ... });
 *
 * The registry may be shared (a developer's, reused across runs): tests use subject names of their own
 * (`uniqueSubject`).
 */
import { randomBytes } from 'node:crypto';
import { describe, inject, test } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Base URL of the tests' registry's Confluent API, or "" when there is none. */
    millraceSchemaRegistryUrl: string;
    /** Why there is no registry ("" when there is one). */
    millraceSchemaRegistrySkipReason: string;
  }
}

function provided(key: 'millraceSchemaRegistryUrl' | 'millraceSchemaRegistrySkipReason'): string | undefined {
  try {
    return inject(key) || undefined;
  } catch {
    // Outside a vitest worker (or a config without the globalSetup): nothing was provided.
    return undefined;
  }
}

/** The base URL of the Confluent API to test against, if there is a registry. */
export function registryUrl(): string | undefined {
  return process.env.MILLRACE_SCHEMA_REGISTRY_URL || provided('millraceSchemaRegistryUrl');
}

/**
 * Why registry tests cannot run here, or `undefined` when a registry is available. With `CI=true` there is no
 * skipping: a missing registry throws, so the test file fails instead of passing vacuously.
 */
export function registrySkipReason(): string | undefined {
  if (registryUrl()) return undefined;
  const reason =
    process.env.MILLRACE_SCHEMA_REGISTRY_SKIP_REASON ||
    provided('millraceSchemaRegistrySkipReason') ||
    'no schema registry: MILLRACE_SCHEMA_REGISTRY_URL is not set and the test setup did not start one';
  if (process.env.CI === 'true') {
    throw new Error(`A schema registry is required when CI=true, but ${reason}`);
  }
  return reason;
}

/**
 * A `describe` block that runs against the tests' registry, or is skipped with the reason in its title when there is
 * none (and fails with `CI=true`).
 */
export function describeWithRegistry(name: string, body: (url: string) => void): void {
  const reason = registrySkipReason();
  const url = registryUrl();
  if (reason !== undefined || url === undefined) {
    describe.skip(name, () => {
      test(`needs a schema registry (skipped: ${reason ?? 'no URL'})`, () => {});
    });
    return;
  }
  describe(name, () => body(url));
}

/** A subject nobody else uses on a shared registry: `<name>-<random>-value` (or `-key`). */
export function uniqueSubject(name: string, suffix: 'value' | 'key' = 'value'): string {
  return `${name}-${randomBytes(4).toString('hex')}-${suffix}`;
}
