#!/usr/bin/env bash
# `make slurm-check`: multi-machine training and preemption through tools/submit_slurm.py on a
# real (throwaway, single-host) Slurm cluster.
#
# 1. installs Debian's slurm-wlm and munge with apt when slurmctld/slurmd/sbatch/munged are
#    missing (needs root; the packages' own services are kept from starting);
# 2. writes a cluster config under a new temporary directory: slurmctld + slurmd on this host,
#    one node with 2 CPUs, no cgroups (proctrack/linuxproc, task/none: works in containers and VMs
#    without a cgroup setup), no accounting database, a munge key made on the spot, every state,
#    log, pid and socket file in that directory, free ports for the daemons;
# 3. starts munged, slurmctld and slurmd (foreground processes of this script), waits for the node;
# 4. runs tools/slurm_check.py (the training runs and their checks; it prints the summary);
# 5. whatever happens (failure, Ctrl-C, TERM): cancels the jobs, stops the three daemons by their
#    process ids and removes the directory (KEEP=1 keeps it; on failure the logs' tails are printed).
# Nothing outside that directory is changed, except for the packages installed in step 1.
#
# Env: PY (default .venv/bin/python), KEEP=1, SLURM_CHECK_ARGS (extra arguments for the driver).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
started=$(date +%s)

say() { echo "slurm-check: $*"; }
die() { echo "slurm-check: FAILED: $*" >&2; exit 1; }

[ -x "$PY" ] || die "$PY not found: run 'make venv build' first (or set PY)"

# ------------------------------------------------------------------ 1. packages
need=()
for tool in slurmctld slurmd sbatch srun scontrol sinfo scancel; do
  command -v "$tool" >/dev/null 2>&1 || { need+=(slurm-wlm); break; }
done
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "${need[*]} missing: install them (apt-get install ${need[*]}) or run as root"
  command -v apt-get >/dev/null 2>&1 || die "${need[*]} missing and apt-get not found (a Debian/Ubuntu package is expected)"
  say "installing ${need[*]} with apt-get"
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    # the packages' postinst would start munge/slurmd/slurmctld services with the system config
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  install_rc=0
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"; } \
    > /tmp/slurm-check-apt.$$.log 2>&1 || install_rc=$?
  [ -z "$made_policy" ] || rm -f "$policy"
  if [ "$install_rc" != 0 ]; then
    tail -n 20 /tmp/slurm-check-apt.$$.log >&2; rm -f /tmp/slurm-check-apt.$$.log
    die "apt-get install ${need[*]} failed (exit status $install_rc)"
  fi
  rm -f /tmp/slurm-check-apt.$$.log
fi
say "$(slurmctld -V) ($(command -v slurmctld)), $(munged -V 2>&1 | head -n 1)"

# ------------------------------------------------------------------ 2. throwaway cluster
TMP=$(mktemp -d "${TMPDIR:-/tmp}/m2f-slurm-check.XXXXXX")
chmod 755 "$TMP"
MUNGE_PID="" CTLD_PID="" SLURMD_PID="" DRIVER_PID=""
export SLURM_CONF="$TMP/etc/slurm.conf"

stop_pid() {  # stop_pid PID NAME: TERM, wait up to 15 s, then KILL
  local pid=$1 name=$2 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm-check: $name (pid $pid) did not stop on TERM: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  set +e
  stop_pid "$DRIVER_PID" "the driver"
  if [ -n "$CTLD_PID" ] && kill -0 "$CTLD_PID" 2>/dev/null; then
    # jobs first, so that slurmd's step daemons end with them
    jobs=$(squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
      say "cancelling jobs still in the queue: $(echo $jobs)"
      scancel $jobs 2>/dev/null
      for i in $(seq 1 60); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
    fi
  fi
  stop_pid "$SLURMD_PID" slurmd
  stop_pid "$CTLD_PID" slurmctld
  stop_pid "$MUNGE_PID" munged
  if [ "$rc" != 0 ]; then
    for f in "$TMP"/log/slurmctld.log "$TMP"/log/slurmd.log "$TMP"/log/munged.out; do
      [ -f "$f" ] && { echo "----- tail of $f" >&2; tail -n 25 "$f" >&2; }
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    say "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  say "daemons stopped$( [ "${KEEP:-0}" = 1 ] || echo ", $TMP removed") ($(( $(date +%s) - started )) s in total)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP"/{etc,munge,state,spool,log,work}
chmod 755 "$TMP/munge"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT=$(free_port); done
HOST=$(hostname -s)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)

# munge: a key made now, the daemon's socket/pid/log/seed in $TMP
if command -v mungekey >/dev/null 2>&1; then
  mungekey --create --bits 1024 --keyfile "$TMP/munge/munge.key"
else  # munge < 0.5.14
  dd if=/dev/urandom of="$TMP/munge/munge.key" bs=128 count=1 status=none
fi
chmod 400 "$TMP/munge/munge.key"
MUNGE_SOCKET="$TMP/munge/munge.socket"
munged --foreground --force --socket="$MUNGE_SOCKET" --key-file="$TMP/munge/munge.key" \
  --pid-file="$TMP/munge/munged.pid" --seed-file="$TMP/munge/munged.seed" \
  --log-file="$TMP/log/munged.log" > "$TMP/log/munged.out" 2>&1 &
MUNGE_PID=$!
for i in $(seq 1 40); do [ -S "$MUNGE_SOCKET" ] && break; kill -0 "$MUNGE_PID" 2>/dev/null || break; sleep 0.25; done
[ -S "$MUNGE_SOCKET" ] || die "munged did not start: $(tail -n 5 "$TMP/log/munged.out")"

cat > "$SLURM_CONF" <<EOF
# Throwaway single-host cluster of tools/slurm_check.sh (everything under $TMP).
ClusterName=m2fcheck
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again after this many seconds (Slurm's default: 120)
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=5
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: process tracking through /proc, no task confinement
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no slurmdbd (so no sacct): job ends are logged to a file instead
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$TMP/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
KillWait=3
MinJobAge=3600
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# ------------------------------------------------------------------ 3. daemons
slurmctld -D -f "$SLURM_CONF" > "$TMP/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D -f "$SLURM_CONF" > "$TMP/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=""
for i in $(seq 1 120); do
  state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  kill -0 "$CTLD_PID" 2>/dev/null || die "slurmctld exited: $(tail -n 5 "$TMP/log/slurmctld.out")"
  kill -0 "$SLURMD_PID" 2>/dev/null || die "slurmd exited: $(tail -n 5 "$TMP/log/slurmd.out")"
  sleep 0.5
done
[ "$state" = idle ] || die "node $HOST is '${state:-unknown}', not idle, after 60 s"
say "cluster up in $TMP: slurmctld (pid $CTLD_PID, port $CTLD_PORT), slurmd (pid $SLURMD_PID, port $SLURMD_PORT), munged (pid $MUNGE_PID); node $HOST idle, 2 CPUs, partition 'check'"

# ------------------------------------------------------------------ 4. the runs
# in the background so that INT/TERM reach the trap at once (bash runs traps only between commands)
# shellcheck disable=SC2086
"$PY" tools/slurm_check.py --work "$TMP/work" --slurm-logs "$TMP/log" ${SLURM_CHECK_ARGS:-} &
DRIVER_PID=$!
wait "$DRIVER_PID"
