/**
 * The Python trainer (`training/`), for tests that train models.
 *
 * `test/setup/trainer.global.ts` (vitest globalSetup) runs `training/setup` — a virtual environment with the pinned
 * requirements in `.infra/trainer-venv` — unless `MILLRACE_TRAINER_PYTHON` already names an interpreter, and hands
 * the interpreter to the test workers through the environment and through provide/inject. Without python3 3.11+
 * (with venv and pip) on a developer's machine it records why instead, and trainer tests skip with that reason;
 * with `CI=true` a missing trainer is an error.
 *
 *   import { describeWithTrainer, TRAINER_DIR } from '../../support/trainer.js';
 *   describeWithTrainer('LocalProcessRunner', (python) => { ... });
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, inject, test } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The trainer environment's interpreter, or "" when there is none. */
    millraceTrainerPython: string;
    /** Why there is no trainer ("" when there is one). */
    millraceTrainerSkipReason: string;
  }
}

/** `<repo>/training`: the directory that holds the `millrace_trainer` package. */
export const TRAINER_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'training');

function provided(key: 'millraceTrainerPython' | 'millraceTrainerSkipReason'): string | undefined {
  try {
    return inject(key) || undefined;
  } catch {
    // Outside a vitest worker (or a config without the globalSetup): nothing was provided.
    return undefined;
  }
}

/** The interpreter of the trainer's environment, if there is one. */
export function trainerPython(): string | undefined {
  return process.env.MILLRACE_TRAINER_PYTHON || provided('millraceTrainerPython');
}

/**
 * Why trainer tests cannot run here, or `undefined` when the trainer is available. With `CI=true` there is no
 * skipping: a missing trainer throws, so the test file fails instead of passing vacuously.
 */
export function trainerSkipReason(): string | undefined {
  if (trainerPython()) return undefined;
  const reason =
    process.env.MILLRACE_TRAINER_SKIP_REASON ||
    provided('millraceTrainerSkipReason') ||
    'no trainer: MILLRACE_TRAINER_PYTHON is not set and the test setup did not run training/setup';
  if (process.env.CI === 'true') {
    throw new Error(`The Python trainer is required when CI=true, but ${reason}`);
  }
  return reason;
}

/**
 * A `describe` block that runs with the trainer's interpreter, or is skipped with the reason in its title when
 * there is none (and fails with `CI=true`).
 */
export function describeWithTrainer(name: string, body: (python: string) => void): void {
  const reason = trainerSkipReason();
  const python = trainerPython();
  if (reason || !python) {
    describe.skip(name, () => {
      test(`needs the Python trainer (skipped: ${reason ?? 'no interpreter'})`, () => {});
    });
    return;
  }
  describe(name, () => body(python));
}
