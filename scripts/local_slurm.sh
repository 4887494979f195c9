#!/usr/bin/env bash
# A single-node SLURM on this machine, for the SLURM integration test (tests/integration/
# test_slurm.py) and for trying profiles/slurm locally. Debian/Ubuntu only; run as root.
#
#   bash scripts/local_slurm.sh start    install slurm-wlm + munge if missing, write
#                                         /etc/slurm/slurm.conf, start munged, slurmctld,
#                                         slurmd; wait until the node is idle
#   bash scripts/local_slurm.sh stop     stop exactly the daemons that `start` started
#   bash scripts/local_slurm.sh status
#
# Idempotent: `start` on a running SLURM (ours) does nothing; `stop` when nothing runs does
# nothing. A munged that was already running is used and left alone.
# Environment: SLURM_CPUS (default: nproc), SLURM_MEM_MB (default: 85% of MemTotal, at most
# what slurmd detects; a node whose RealMemory exceeds that is drained).
set -euo pipefail
RUN=/run/localslurm # our pid files (one per daemon we started)
CONF=/etc/slurm/slurm.conf
CPUS=${SLURM_CPUS:-$(nproc)}
MEM=${SLURM_MEM_MB:-$(awk '/^MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)}

die() { echo "local_slurm: $*" >&2; exit 1; }

install_pkgs() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v munged >/dev/null && return
  command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get"
  echo "local_slurm: installing slurm-wlm and munge (Debian packages)"
  apt-get update -qq
  # --no-upgrade: leave already installed packages alone. Services are started below, by
  # us, not by the packages' postinst (no systemd here).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade \
    slurm-wlm munge >/tmp/local_slurm_apt.log 2>&1 ||
    { tail -20 /tmp/local_slurm_apt.log; die "apt-get install slurm-wlm munge failed"; }
}

write_conf() {
  mkdir -p /etc/slurm /var/spool/slurm/ctld /var/spool/slurm/d /var/log/slurm /run/slurm
  cat >"$CONF" <<CONF
# Written by aedistill scripts/local_slurm.sh: one node (this machine), no accounting.
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for 1 h (SLURM's default: 300 s). Without
# accounting, Snakemake's SLURM plugin learns job states from squeue, and it only does so
# when MinJobAge is at least 3 x slurm-init-seconds-before-status-checks
# (profiles/slurm/config.yaml); the tests also ask scontrol how each job ended.
MinJobAge=3600
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurm/ctld
SlurmdSpoolDir=/var/spool/slurm/d
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if munge_works; then
    echo "local_slurm: munged already running (not ours, left alone)"
    return
  fi
  [ -s /etc/munge/munge.key ] || mungekey --create --force 2>/dev/null ||
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  chmod 0755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged # daemonizes; writes /run/munge/munged.pid
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  [ -s /run/munge/munged.pid ] || die "munged did not start; see /var/log/munge/munged.log"
  cp /run/munge/munged.pid "$RUN/munged.pid"
  munge_works || die "munge credentials do not verify; see /var/log/munge/munged.log"
}

node_state() { sinfo -h -n localhost -o %t 2>/dev/null || true; }

ours_running() { [ -s "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() {
  [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
  if ours_running slurmctld && ours_running slurmd; then
    echo "local_slurm: already running"
    sinfo
    return
  fi
  stop >/dev/null # a half-started earlier attempt: clean up our own leftovers only
  install_pkgs
  mkdir -p "$RUN"
  write_conf
  start_munge
  # -D (foreground) sent to the background, so that $! is the daemon's own PID.
  # -c: start with an empty job state; -N localhost: the node name differs from hostname.
  setsid /usr/sbin/slurmctld -D -c >/var/log/slurm/slurmctld.out 2>&1 </dev/null &
  echo $! >"$RUN/slurmctld.pid"
  for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
  setsid /usr/sbin/slurmd -D -N localhost >/var/log/slurm/slurmd.out 2>&1 </dev/null &
  echo $! >"$RUN/slurmd.pid"
  for _ in $(seq 100); do [ "$(node_state)" = idle ] && break; sleep 0.3; done
  sinfo
  [ "$(node_state)" = idle ] || die "node not idle; see /var/log/slurm/*.log"
}

stop() {
  for d in slurmd slurmctld munged; do # reverse order of start
    f=$RUN/$d.pid
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "local_slurm: stopped $d ($pid)"
    fi
    rm -f "$f"
  done
}

status() {
  for d in munged slurmctld slurmd; do
    if ours_running "$d"; then echo "$d running ($(cat "$RUN/$d.pid"))"; else echo "$d not running (ours)"; fi
  done
  sinfo 2>/dev/null || true
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
