import type { MigrationInterface } from 'typeorm';
import { CreateFleetSchema1795322935639 } from './1795322935639-create-fleet-schema';
import { HotWorkerHeartbeats1795342077530 } from './1795342077530-hot-worker-heartbeats';
import { AddJobPriorLeaseToken1796288273051 } from './1796288273051-add-job-prior-lease-token';
import { QueueIndexesForLargeTables1796300000000 } from './1796300000000-queue-indexes-for-large-tables';
import { AddJobReleases1796300000001 } from './1796300000001-add-job-releases';
import { AddWorkerCredentials1796400000000 } from './1796400000000-add-worker-credentials';

type MigrationClass = new () => MigrationInterface;

/** Every migration, oldest first. Files are `<timestamp>-<verb-noun>.ts` and never edited once landed. */
export const migrations: MigrationClass[] = [
  CreateFleetSchema1795322935639,
  HotWorkerHeartbeats1795342077530,
  AddJobPriorLeaseToken1796288273051,
  QueueIndexesForLargeTables1796300000000,
  AddJobReleases1796300000001,
  AddWorkerCredentials1796400000000,
];
