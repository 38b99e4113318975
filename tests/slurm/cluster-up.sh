#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the end-to-end test (tests/test_slurm.py), with fake
# GPUs. Run as root; stop it with cluster-down.sh (same STATE). Tested with Debian 12's slurm-wlm
# 22.05 and munge 0.5.15 (apt-get install --no-install-recommends slurm-wlm munge).
#
#   STATE=/var/lib/prune-distill-slurm-test FAKE_GPUS=2 tests/slurm/cluster-up.sh
#
# Exit status: 0 the node is idle and takes jobs (partition `debug`); 3 a SLURM daemon that this
# harness did not start runs here (left alone: the caller should skip); anything else: the cluster
# did not come up (what was started is stopped again, and the logs' tails are printed).
#
# Everything it starts is recorded by PID file in $STATE/run, and every system file it writes is
# recorded in $STATE, so that cluster-down.sh can put the machine back as found:
#   - munged only if munge did not already work (then its PID goes to $STATE/run/munged.pid);
#   - /etc/slurm/slurm.conf and /etc/slurm/gres.conf (a copy that was there is kept in
#     $STATE/backup and restored). slurm.conf must be at that compiled-in path, not found through
#     SLURM_CONF: the Snakemake SLURM plugin strips every SLURM_* variable inside its jobs.
# A run that crashed is cleaned up by the next one (it calls cluster-down.sh first).
#
# Job status: no accounting (no slurmdbd, no MariaDB). The test's profile sets
# `slurm-status-command: squeue`, which reads job states from slurmctld itself for as long as a
# finished job is kept (MinJobAge, 300 s here: the plugin wants at least 3x its first status-check
# delay, 5 s in the test). Chosen over MariaDB + slurmdbd because it is two daemons and a database
# fewer: less to install (about 15 s), to initialise and start (seconds, and memory, on a machine
# shared with other work), and to leave behind when a run is killed, while what the test is about
# (the workflow, the profile, the jobs' resources) is the same. What accounting would have told
# (which jobs ran, where, in what state) comes from jobcomp/filetxt ($STATE/log/jobcomp.txt), and
# each task's CUDA_VISIBLE_DEVICES from a task prolog ($STATE/log/tasks.log).
set -euo pipefail
STATE=${STATE:-/var/lib/prune-distill-slurm-test}
FAKE_GPUS=${FAKE_GPUS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
MARK="# written by prune-distill tests/slurm/cluster-up.sh"  # cluster-down.sh removes files that carry it
T0=$(date +%s%N)

say() { echo "cluster-up: $*"; }
refuse() { echo "cluster-up: $*" >&2; exit 3; }
pids_named() { # PIDs whose command name is exactly $1, on one line
  local p
  for p in /proc/[0-9]*; do
    if [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ]; then echo "${p#/proc/}"; fi
  done | paste -sd' '
}

[ "$(id -u)" = 0 ] || { echo "cluster-up: must run as root" >&2; exit 2; }
for tool in munged munge unmunge mungekey slurmctld slurmd sinfo scontrol squeue scancel; do
  command -v "$tool" >/dev/null || { echo "cluster-up: $tool not found" >&2; exit 2; }
done
# fake GPU devices: any distinct existing character devices (no cgroup device limits here)
DEVS=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)
if ! [ "$FAKE_GPUS" -ge 0 ] || ! [ "$FAKE_GPUS" -le ${#DEVS[@]} ]; then
  echo "cluster-up: FAKE_GPUS must be 0 to ${#DEVS[@]}" >&2; exit 2
fi

# A previous run that crashed may have left daemons, configs or spool: clean up after it first.
if [ -d "$STATE/run" ] || [ -d "$STATE/backup" ]; then
  say "cleaning up after a previous run in $STATE"
  STATE=$STATE "$HERE/cluster-down.sh"
fi
# A SLURM that someone else runs on this machine is not ours to reconfigure or stop.
for d in slurmctld slurmd slurmdbd; do
  others=$(pids_named "$d")
  [ -z "$others" ] || refuse "a $d not started by this harness is running (PID $others); not touching it"
done
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && [ -n "$(pids_named munged)" ]; then
  refuse "a munged is running (PID $(pids_named munged)) but munge does not work; not touching it"
fi

rm -rf "$STATE/spool" "$STATE/log"
mkdir -p "$STATE"/{spool/ctld,spool/d,log,run,backup}

fail() {
  echo "cluster-up: $*" >&2
  timeout 5 sinfo -R 2>&1 | sed 's/^/  sinfo: /' >&2 || true
  for f in "$STATE"/log/*.log; do
    if [ -s "$f" ]; then echo "--- $f" >&2; tail -n 20 "$f" >&2; fi
  done
  STATE=$STATE "$HERE/cluster-down.sh" >&2 || true
  exit 1
}

# --- munge: reuse a working munged; otherwise start one (and only then stop it in cluster-down.sh)
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running, reused"
else
  if [ ! -s /etc/munge/munge.key ]; then  # the munge package's postinst normally creates it
    mungekey --create --force
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    touch "$STATE/created-munge-key"
  fi
  if [ ! -d /run/munge ]; then mkdir -p /run/munge && touch "$STATE/created-run-munge"; fi
  chown munge:munge /run/munge && chmod 755 /run/munge
  # --force: a socket left by a munged that died is no reason to refuse
  runuser -u munge -- munged --force </dev/null >>"$STATE/log/munged-start.log" 2>&1 || fail "munged did not start"
  for _ in $(seq 1 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$STATE/run/munged.pid" || fail "munged wrote no PID file"
  munge -n | unmunge >/dev/null || fail "munge does not work"
  say "munged started (PID $(cat "$STATE/run/munged.pid"))"
fi

# --- configuration (a copy that was there before goes to $STATE/backup, once)
mkdir -p /etc/slurm
install_conf() { # install_conf NAME < content
  local target=/etc/slurm/$1
  if [ -e "$target" ] && ! grep -qF "$MARK" "$target" && [ ! -e "$STATE/backup/$1" ]; then
    cp -p "$target" "$STATE/backup/$1"
  fi
  cat > "$target"
}
CPUS=$(nproc)
MEM=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') - 512 ))
GRES_TYPES=""; GRES_NODE=""
if [ "$FAKE_GPUS" -gt 0 ]; then
  GRES_TYPES="GresTypes=gpu"; GRES_NODE="Gres=gpu:$FAKE_GPUS"
  # one line per GPU, each with its own File= ('Name=gpu Count=N' alone leaves the node INVALID)
  {
    echo "$MARK"
    for i in $(seq 0 $((FAKE_GPUS - 1))); do echo "Name=gpu File=${DEVS[$i]}"; done
  } | install_conf gres.conf
elif [ -e /etc/slurm/gres.conf ]; then
  echo "$MARK" | install_conf gres.conf  # no GPUs: one that is there goes out of the way
fi
# Logs the GPUs each task sees. A task prolog runs with the environment of the task it precedes;
# slurmstepd reads what it prints on stdout, so it writes to its own file.
cat > "$STATE/task-prolog.sh" <<PROLOG
#!/bin/sh
echo "job=\$SLURM_JOB_ID step=\$SLURM_STEP_ID cuda_visible_devices=\${CUDA_VISIBLE_DEVICES-unset}" \\
  >> "$STATE/log/tasks.log"
PROLOG
chmod 755 "$STATE/task-prolog.sh"
install_conf slurm.conf <<CONF
$MARK
ClusterName=prune-distill-test
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
# no cgroups in a container without systemd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# finished jobs stay visible to squeue (the test's job status command) this long
MinJobAge=300
$GRES_TYPES
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
TaskProlog=$STATE/task-prolog.sh
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# --- the daemons (they detach; their output goes to files, never to the caller's pipes, which
#     they would otherwise hold open)
slurmctld </dev/null >>"$STATE/log/slurmctld-start.log" 2>&1 || fail "slurmctld did not start"
slurmd -N localhost </dev/null >>"$STATE/log/slurmd-start.log" 2>&1 || fail "slurmd did not start"
for _ in $(seq 1 100); do [ -s "$STATE/run/slurmctld.pid" ] && [ -s "$STATE/run/slurmd.pid" ] && break; sleep 0.1; done
if [ ! -s "$STATE/run/slurmctld.pid" ] || [ ! -s "$STATE/run/slurmd.pid" ]; then fail "no PID file from slurmctld or slurmd"; fi
# (each query bounded: a client asking a slurmctld that died retries for a minute)
state=""; deadline=$(( $(date +%s) + 30 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  for d in slurmctld slurmd; do [ -d "/proc/$(cat "$STATE/run/$d.pid")" ] || fail "$d exited"; done
  state=$(timeout 3 sinfo -h -n localhost -o '%T' 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.2
done
[ "$state" = idle ] || fail "node localhost is '${state:-unreachable}', not idle, after 30 s"
say "SLURM ready in $(( ($(date +%s%N) - T0) / 1000000 )) ms: partition debug, $CPUS CPUs, $FAKE_GPUS fake GPUs," \
  "slurmctld PID $(cat "$STATE/run/slurmctld.pid"), slurmd PID $(cat "$STATE/run/slurmd.pid"), state in $STATE"
