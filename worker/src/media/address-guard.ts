/**
 * The address guard lives in contracts (contracts/src/net/address-guard.ts), shared with the
 * orchestrator's webhook sender; fleet-worker.ts still imports it from here.
 */
export { AddressPolicy } from '@avatar-fleet/contracts';
