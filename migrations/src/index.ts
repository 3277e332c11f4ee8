import type { MigrationInterface } from 'typeorm';
import { CreateFleetSchema1795322935639 } from './1795322935639-create-fleet-schema';
import { HotWorkerHeartbeats1795342077530 } from './1795342077530-hot-worker-heartbeats';

type MigrationClass = new () => MigrationInterface;

/** Every migration, oldest first. Files are `<timestamp>-<verb-noun>.ts` and never edited once landed. */
export const migrations: MigrationClass[] = [CreateFleetSchema1795322935639, HotWorkerHeartbeats1795342077530];
