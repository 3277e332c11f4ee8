import { B2Storage, type B2Tuning } from './b2.driver';
import { LocalStorage } from './local.driver';
import { S3Storage, type S3Tuning } from './s3.driver';
import { StorageError, type ObjectStorage, type StorageSettings } from './storage';

/** Knobs that are not configuration: tests use them to force pagination and small parts. */
export interface StorageTuning {
  b2?: B2Tuning;
  s3?: S3Tuning;
}

/** The driver the settings name, ready to use (nothing is contacted until the first call). */
export function createStorage(settings: StorageSettings, tuning: StorageTuning = {}): ObjectStorage {
  switch (settings.driver) {
    case 'b2':
      return new B2Storage(settings.b2, tuning.b2);
    case 's3':
      return new S3Storage(settings.s3, tuning.s3);
    case 'local':
      return new LocalStorage(settings.local);
    default:
      throw new StorageError(`unknown storage driver "${(settings as { driver?: unknown }).driver}"`);
  }
}
