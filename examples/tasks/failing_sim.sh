#!/bin/sh
# failing_sim(a, delay_seconds): multiplies a by itself three times like power_sim, sleeping
# delay_seconds after each step, and then fails (the design's task that raises in the end): its
# exit status and the last lines of its stderr are what its result answers.
set -eu
a=$1 delay=$2
steps=3
result=1
step=0
while [ "$step" -lt "$steps" ]; do
  result=$((result * a))
  step=$((step + 1))
  sleep "$delay"
  printf '{"done": %d, "total": %d, "message": "step %d"}\n' "$step" "$steps" "$step" >>"$JOBWORKER_PROGRESS"
done
echo "failing_sim: simulated failure after $steps multiplications (reached $result)" >&2
exit 3
