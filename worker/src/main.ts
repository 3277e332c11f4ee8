import { productionPipelines } from './pipelines/production';
import { runWorker } from './run-worker';

runWorker(process.env, productionPipelines).then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`worker crashed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
