/**
 * Preloaded with `--require` into an orchestrator process: its clock reads an hour ahead of the
 * database's, so a test can tell which clock a time was taken from.
 */
const realNow = Date.now;
Date.now = () => realNow() + 3_600_000;

export {};
