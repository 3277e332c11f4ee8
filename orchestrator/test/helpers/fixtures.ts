import type { RegisterWorkerRequest, TypedCreateJob, WorkerClient } from '@avatar-fleet/contracts';

export function lipsyncJob(overrides: Partial<TypedCreateJob<'lipsync'>> = {}): TypedCreateJob<'lipsync'> {
  return { kind: 'lipsync', input: { avatarId: 'avatar-1', audio: 'https://media.example/speech.wav' }, ...overrides };
}

export function workerRegistration(overrides: Partial<RegisterWorkerRequest> = {}): RegisterWorkerRequest {
  return {
    provider: 'local',
    mode: 'buffer',
    gpuClass: 'RTX 3090',
    gpuName: 'NVIDIA GeForce RTX 3090',
    vramGb: 24,
    kinds: ['avatar.prepare', 'lipsync'],
    version: 'test',
    ...overrides,
  };
}

export async function registerWorker(client: WorkerClient, overrides: Partial<RegisterWorkerRequest> = {}): Promise<string> {
  return (await client.register(workerRegistration(overrides))).workerId;
}

/** Polls `check` until it returns a value (not undefined). `timeoutMs` only ends a broken run: a loaded machine may take long. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 25): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A fresh GPU class: tests that share a database give their jobs and workers their own, so none takes another's jobs. */
export function lane(): string {
  return `lane-${Math.random().toString(16).slice(2, 10)}`;
}
