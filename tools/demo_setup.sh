#!/bin/bash
# The demo's data, for `make run` and `make run-cluster`: the schema, sample residents and a
# simulated month of calls, the console's demo users (supervisor, department, auditor, three
# agents), desk phones and softphones for agents 1001 and 1002, and the supervisor's phone
# 2001. Every step is idempotent.
# Uses HOTLINE_CONFIG and the other HOTLINE_* variables it is given; BIN is the venv's bin.
set -eu
hotline=${BIN:-.venv/bin}/hotline
"$hotline" db upgrade
"$hotline" sample load --if-empty
"$hotline" simulate --if-empty
# The supervisor's own desk phone 2001: the wallboard's 监听 / 耳语 / 强插 ring it.
echo demo-supervisor | "$hotline" users add supervisor --role supervisor --name 值班主管 \
  --interface PJSIP/2001 --password-stdin >/dev/null
echo demo-sip-2001 | "$hotline" phones add 2001 --password-stdin >/dev/null
echo demo-pension | "$hotline" users add pension --role department --department 养老保险 --name 养老保险科 --password-stdin >/dev/null
echo demo-auditor | "$hotline" users add auditor --role auditor --name 审计员 --password-stdin >/dev/null
for a in 1001 1002; do
  echo "demo-agent-$a" | "$hotline" users add "agent$a" --role agent \
    --name "坐席$a" --agent-id "$a" --interface "PJSIP/$a" --password-stdin >/dev/null
  echo "demo-sip-$a" | "$hotline" phones add "$a" --password-stdin >/dev/null
  "$hotline" phones list --format json | grep -q "\"$a-web\"" || "$hotline" phones add "$a" --softphone >/dev/null
done
echo demo-agent-1003 | "$hotline" users add agent1003 --role agent \
  --name 坐席1003 --agent-id 1003 --interface Local/1003-3-20@hotline-agents/n --password-stdin >/dev/null
