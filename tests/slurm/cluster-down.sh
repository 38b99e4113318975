#!/usr/bin/env bash
# Stops the cluster that cluster-up.sh started (same STATE) and puts the machine back as found:
# cancels the cluster's jobs (their slurmstepd and processes outlive slurmd), stops exactly the
# daemons recorded in $STATE/run, by PID (a PID that is no longer that daemon is left alone),
# restores /etc/slurm/slurm.conf and gres.conf from $STATE/backup or removes the ones that
# cluster-up.sh wrote, and removes a munge key or /run/munge that it created. Safe to run twice,
# and after a run that crashed half-way. The logs stay in $STATE/log.
#
#   STATE=/var/lib/prune-distill-slurm-test tests/slurm/cluster-down.sh
set -uo pipefail
STATE=${STATE:-/var/lib/prune-distill-slurm-test}
MARK="# written by prune-distill tests/slurm/cluster-up.sh"
[ -d "$STATE" ] || exit 0

say() { echo "cluster-down: $*"; }
pid_of() { # the PID recorded for daemon $1, if that process is still that daemon
  local f=$STATE/run/$1.pid p
  [ -s "$f" ] || return 1
  p=$(tr -dc 0-9 < "$f")
  [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$1" ] && echo "$p"
}
stop() { # stops daemon $1 by its PID file: TERM, then KILL after 10 s
  local p
  if p=$(pid_of "$1"); then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 100); do [ -d "/proc/$p" ] || break; sleep 0.1; done
    if [ -d "/proc/$p" ]; then
      kill -KILL "$p" 2>/dev/null; say "killed $1 (PID $p)"
    else
      say "stopped $1 (PID $p)"
    fi
  fi
  rm -f "$STATE/run/$1.pid"
}

# The jobs first, while slurmctld can still be asked (and /etc/slurm/slurm.conf is still ours).
if pid_of slurmctld >/dev/null && grep -qF "$MARK" /etc/slurm/slurm.conf 2>/dev/null; then
  jobs=$(timeout 20 squeue -h -o %i 2>/dev/null | paste -sd' ')
  if [ -n "$jobs" ]; then
    say "cancelling jobs $jobs"
    # shellcheck disable=SC2086
    timeout 20 scancel $jobs 2>/dev/null
    for _ in $(seq 1 75); do [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
stop slurmd
stop slurmctld
stop munged
# A job step daemon of a job that could not be cancelled would outlive slurmd: say so.
left=$(for p in /proc/[0-9]*; do
  [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] && echo "${p#/proc/}"
done | paste -sd' ')
[ -z "$left" ] || echo "cluster-down: warning: slurmstepd still running (PID $left)" >&2

for name in slurm.conf gres.conf; do
  if [ -e "$STATE/backup/$name" ]; then
    cp -p "$STATE/backup/$name" "/etc/slurm/$name" && rm -f "$STATE/backup/$name" && say "restored /etc/slurm/$name"
  elif grep -qF "$MARK" "/etc/slurm/$name" 2>/dev/null; then
    rm -f "/etc/slurm/$name"
  fi
done
if [ -e "$STATE/created-munge-key" ]; then  # only ever created together with a munged, now stopped
  rm -f /etc/munge/munge.key "$STATE/created-munge-key"
fi
# (a stopped munged leaves only its socket's lock file behind)
if [ -e "$STATE/created-run-munge" ] && [ ! -e /run/munge/munged.pid ]; then
  rm -rf /run/munge && rm -f "$STATE/created-run-munge"
fi
rm -f "$STATE/task-prolog.sh"
rmdir "$STATE/run" "$STATE/backup" 2>/dev/null
true
