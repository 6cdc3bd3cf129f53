#!/bin/sh
# power_sim(a, b, delay_seconds): a to the power b, one multiplication at a time, sleeping
# delay_seconds after each (the async task manager design's long-running simulation). Reports each
# step to JOBWORKER_PROGRESS and leaves the result, a JSON number, at JOBWORKER_RESULT.
set -eu
a=$1 b=$2 delay=$3
echo "power_sim: $a^$b, one multiplication every $delay s"
result=1
step=0
while [ "$step" -lt "$b" ]; do
  result=$((result * a))
  step=$((step + 1))
  sleep "$delay"
  printf '{"done": %d, "total": %d, "message": "%d^%d = %d"}\n' "$step" "$b" "$a" "$step" "$result" >>"$JOBWORKER_PROGRESS"
done
echo "power_sim: $a^$b = $result"
printf '%d\n' "$result" >"$JOBWORKER_RESULT"
