import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { AddressPolicy, type JobKind } from '@avatar-fleet/contracts';
import type { JobContext } from '../../src/pipelines/pipeline';
import type { Logger } from '../../src/runtime/logger';
import { attemptKey, type ObjectStorage } from '../../src/storage/storage';

/** A job context like the runner's, for calling a pipeline directly: a progress log and an abort switch. */
export function jobContext(kind: JobKind, storage: ObjectStorage, scratchRoot: string, log: Logger) {
  const controller = new AbortController();
  const progress: Array<[string, number]> = [];
  const id = crypto.randomUUID();
  const ctx: JobContext = {
    job: { id, kind, attempt: 1 }, log, signal: controller.signal, storage, scratchDir: mkdtempSync(path.join(scratchRoot, 'scratch-')),
    progress: (stage, fraction) => void progress.push([stage, fraction]),
    putOutput: (name, file, contentType) => storage.putFile(attemptKey(id, 1, name), file, { contentType }),
    mediaAccess: new AddressPolicy(),
  };
  return { ctx, controller, progress };
}
