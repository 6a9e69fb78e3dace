#!/bin/bash
# make test's pytest run: with no arguments, the real tier (tests/real: one Asterisk, mostly
# waiting on calls) runs beside the other tiers (CPU-bound store, protocol and unit tests),
# which run as two pytest-xdist workers, each taking whole files (their module fixtures stay
# in one process): 21 min in one process, about 15 beside the real tier. The real tier's
# output goes to var/test-real.log and is printed when it ends. With arguments: one plain pytest.
# Exit status: the first non-zero of the two.
set -u
pytest=${PYTEST:-.venv/bin/pytest}
if [ $# -gt 0 ]; then exec "$pytest" "$@"; fi
mkdir -p var
log=var/test-real.log
"$pytest" tests/real >"$log" 2>&1 &
real=$!
trap 'kill $real 2>/dev/null' INT TERM
# Niced: the real tier's calls have timers (ring times, SIP timers, menus that wait for a
# key), and its Asterisk and serve must not wait behind two CPU-bound workers.
nice -n 10 "$pytest" -n 2 --dist loadfile tests/unit tests/protocol tests/store
rest=$?
# LINT (make test sets it: ruff and mypy) runs here, while the real tier still runs.
lint_rc=0
if [ -n "${LINT:-}" ]; then
  $LINT
  lint_rc=$?
fi
wait $real
real_rc=$?
echo
echo "=============================== tests/real ($log) ==============================="
cat "$log"
echo "tiers: unit+protocol+store exit $rest, real exit $real_rc, lint exit $lint_rc"
[ $rest -ne 0 ] && exit $rest
[ $lint_rc -ne 0 ] && exit $lint_rc
exit $real_rc
