import { AddressPolicy as GuardPolicy } from '@avatar-fleet/contracts';

/**
 * The policy job media URLs go through: the shared address guard (contracts/src/net/address-guard.ts)
 * whose refusals tell the operator which setting opens an address. fleet-worker.ts builds its
 * policy from this module.
 */
export class AddressPolicy extends GuardPolicy {
  constructor(allow: readonly string[] = []) {
    super(allow, 'MEDIA_FETCH_ALLOW');
  }
}
