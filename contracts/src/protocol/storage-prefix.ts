/**
 * Every owner (the name of a product API key) has its own namespace in object storage: its jobs read
 * their inputs and write their avatar bundles and outputs under `tenants/<owner>/`, and never see
 * another owner's keys. The orchestrator hands each claimed job its owner's prefix; the worker puts
 * every key the job uses under it.
 */

/**
 * An owner name, which becomes one storage path segment: 1-64 letters, digits, `_`, `-` and `.`,
 * starting with a letter or digit, with no `..` (so never `.`, `..` or a hidden name). Written as
 * a source string so the `API_KEYS` pattern can embed it.
 */
export const OWNER_NAME_SOURCE = '[A-Za-z0-9](?:[A-Za-z0-9_-]|\\.(?!\\.)){0,63}';
export const OWNER_NAME_PATTERN = new RegExp(`^${OWNER_NAME_SOURCE}$`);

/** `tenants/<owner>/` and nothing else: a job's storage prefix as the orchestrator sends it. */
export const STORAGE_PREFIX_PATTERN = new RegExp(`^tenants/${OWNER_NAME_SOURCE}/$`);
export const STORAGE_PREFIX_MESSAGE = '$property must be tenants/<owner>/ with an owner name of letters, digits, _ - and . (no ..)';

/** The storage prefix of an owner's jobs. The worker refuses a prefix that does not match STORAGE_PREFIX_PATTERN. */
export function storagePrefixOf(owner: string): string {
  return `tenants/${owner}/`;
}
