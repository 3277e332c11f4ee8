/**
 * Legacy hosts name their GPU class with its memory, `GPU_CLASS_NAME=RTX 3090 (24 GB)` (seed 003).
 * The class is the name without that suffix, so it matches jobs that ask for `RTX 3090` and
 * workers started with `GPU_CLASS=RTX 3090`; the suffix is the VRAM the worker registers with.
 */
const WITH_MEMORY = /^(.*?)\s*\(\s*(\d+(?:\.\d+)?)\s*(GB|GiB|G)\s*\)\s*$/i;

export function parseGpuClassName(name: string): { gpuClass: string; vramGb?: number } {
  const match = WITH_MEMORY.exec(name.trim());
  if (!match || !match[1]) return { gpuClass: name.trim() };
  return { gpuClass: match[1], vramGb: Number(match[2]) };
}
