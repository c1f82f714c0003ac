"""A real single-node Slurm cluster (slurm-wlm + munge from Debian) started for a test and stopped after it.

Only the daemons started here are stopped. Needs root, because slurmctld/slurmd and munged run as their system
users and read /etc/slurm/slurm.conf.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SLURM_CONF = """\
ClusterName=mrdtrack-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=300
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} Boards=1 SocketsPerBoard=1 CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def why_slurm_cannot_start() -> str | None:
    """None when a local Slurm can be started here, else the reason."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    missing = [tool for tool in ("slurmctld", "slurmd", "munged", "sinfo", "sbatch") if not _which(tool)]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    return None


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")


@contextmanager
def local_slurm(workdir: Path) -> Iterator[None]:
    """Configure and start munged, slurmctld and slurmd; stop exactly those on exit."""
    host = socket.gethostname().split(".")[0]
    Path("/etc/slurm").mkdir(exist_ok=True)
    Path("/etc/slurm/slurm.conf").write_text(SLURM_CONF.format(host=host, cpus=os.cpu_count() or 2))
    for folder, owner in (("/var/spool/slurmctld", "slurm"), ("/var/spool/slurmd", None),
                          ("/var/log/slurm", "slurm"), ("/run/munge", "munge")):  # fmt: skip
        Path(folder).mkdir(parents=True, exist_ok=True)
        if owner:
            shutil.chown(folder, owner, owner)
    started: list[subprocess.Popen] = []
    started_munge = False
    try:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True)
            started_munge = True
        # -c: forget jobs saved by an earlier (perhaps interrupted) test session, or they run before ours.
        for daemon, options in (("slurmctld", ["-D", "-c"]), ("slurmd", ["-D"])):
            log = open(workdir / f"{daemon}.out", "w")  # noqa: SIM115 - closed with the daemon
            started.append(subprocess.Popen([_which(daemon), *options], stdout=log, stderr=subprocess.STDOUT))
        _wait_until_idle()
        yield
    finally:
        cancel_all_jobs()
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if started_munge:
            subprocess.run(["pkill", "-x", "munged"], check=False)


def cancel_all_jobs() -> None:
    """Cancel every job still queued or running, so a test that timed out leaves no work behind for the next."""
    subprocess.run(["scancel", "--user", str(os.geteuid())], capture_output=True, check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.strip()
        if not queued:
            return
        time.sleep(1)


def _wait_until_idle(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip()
        if state in ("idle", "mix", "alloc"):
            return
        time.sleep(1)
    raise RuntimeError("the local Slurm node did not become idle within a minute")
