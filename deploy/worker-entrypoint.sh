#!/bin/sh
# Worker container entrypoint (runs under tini, which reaps zombies and passes signals here).
#
# Buffer mode: exec the worker, so it receives SIGTERM directly.
# Queue mode (Salad): also run Salad's job-queue sidecar, which pulls jobs and POSTs them to
# http://localhost:8000/generate. Both are stopped together: SIGTERM goes to both, and if either
# exits the other is stopped, so the container ends and the platform replaces it.
#
# Mode rule (same as the worker's config): WORKER_MODE if set; else BUFFER_WORKER_ID means buffer;
# else queue. SALAD_SIDECAR=0 runs queue mode without the sidecar (to POST /generate by hand).
set -eu

if [ "$#" -eq 0 ]; then
  set -- node /app/worker/dist/src/main.js
fi

mode="${WORKER_MODE:-}"
if [ -z "$mode" ]; then
  if [ -n "${BUFFER_WORKER_ID:-}" ]; then mode=buffer; else mode=queue; fi
fi

case "$mode" in
  buffer) exec "$@" ;;
  queue) ;;
  *)
    echo "worker-entrypoint: WORKER_MODE must be buffer or queue, got '$mode'" >&2
    exit 2
    ;;
esac

if [ "${SALAD_SIDECAR:-1}" = "0" ]; then
  exec "$@"
fi

sidecar="${SALAD_JQ_WORKER_BIN:-/usr/local/bin/salad-http-job-queue-worker}"
if [ ! -x "$sidecar" ]; then
  echo "worker-entrypoint: queue mode needs $sidecar (Salad job-queue worker)" >&2
  exit 2
fi

app_pid=""
sidecar_pid=""
stopping=0
stop_all() {
  stopping=1
  # Ignore "no such process": one of them may already be gone.
  [ -n "$app_pid" ] && kill -TERM "$app_pid" 2>/dev/null || true
  [ -n "$sidecar_pid" ] && kill -TERM "$sidecar_pid" 2>/dev/null || true
}
trap stop_all TERM INT

"$@" &
app_pid=$!
"$sidecar" &
sidecar_pid=$!
echo "worker-entrypoint: queue mode, worker pid $app_pid, salad sidecar pid $sidecar_pid" >&2

# POSIX sh has no `wait -n`. A short interruptible wait (a trapped signal ends it at once) lets us
# notice whichever child exits first; `wait` also reaps children, so kill -0 then fails for them.
while [ "$stopping" = 0 ] && kill -0 "$app_pid" 2>/dev/null && kill -0 "$sidecar_pid" 2>/dev/null; do
  sleep 1 &
  wait $! 2>/dev/null || true
done

sidecar_died=0
if [ "$stopping" = 0 ] && ! kill -0 "$sidecar_pid" 2>/dev/null; then
  sidecar_died=1
  echo "worker-entrypoint: salad sidecar exited; stopping the worker" >&2
fi
stop_all

# Loop: a second signal interrupts `wait` before the worker has finished draining.
status=0
while :; do
  if wait "$app_pid"; then status=0; else status=$?; fi
  kill -0 "$app_pid" 2>/dev/null || break
done
wait "$sidecar_pid" 2>/dev/null || true
# A lost sidecar is a failure even when the worker then shut down cleanly.
if [ "$sidecar_died" = 1 ] && [ "$status" = 0 ]; then
  status=1
fi
exit "$status"
