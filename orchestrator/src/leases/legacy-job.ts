import { MEDIA_REF_PATTERN, type ClaimedJob, type JobKind } from '@avatar-fleet/contracts';

/** The input fields of each kind that name media: an http(s) URL or a storage key. */
const MEDIA_FIELDS: Record<JobKind, readonly string[]> = {
  lipsync: ['audio', 'sourceVideo'],
  'avatar.prepare': ['source'],
};

/**
 * A claimed job as a legacy host (seed 003) must see it. Such a host knows nothing of
 * `storagePrefix`, so the storage keys in the input are given to it already inside the owner's
 * folder (`uploads/a.wav` becomes `tenants/shop/uploads/a.wav`): it reads the owner's objects, not
 * another owner's of the same name. URLs are left as they are. What the host writes (its results,
 * its own avatar store) follows its own layout, which this fleet does not know.
 */
export function forLegacyHost(job: ClaimedJob): ClaimedJob {
  const prefix = job.storagePrefix;
  if (!prefix) return job;
  const input = { ...job.input };
  for (const field of MEDIA_FIELDS[job.kind] ?? []) {
    const value = input[field];
    if (typeof value === 'string' && MEDIA_REF_PATTERN.test(value) && !/^https?:\/\//.test(value)) input[field] = prefix + value;
  }
  return { ...job, input };
}
