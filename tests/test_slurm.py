"""The tiny configuration end to end on a real SLURM, through the profile users get
(`snakemake --profile slurm`), with only what a one-node test cluster needs overridden; and a
training job signalled as at a time limit, resubmitted by the profile, resuming its saved state.

The cluster (tests/slurm/cluster-up.sh) is one node on localhost with fake GPUs, started for this
module and stopped after it, by PID, whatever happens in between. Where SLURM is missing it is
installed from Debian's packages when this runs as root with apt-get; otherwise, or when that
fails, the test is skipped with the reason. Set PRUNE_DISTILL_SLURM_INSTALL=0 to never install."""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "tests" / "slurm"
STATE = Path(os.environ.get("PRUNE_DISTILL_SLURM_STATE", "/var/lib/prune-distill-slurm-test"))
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
FAKE_GPUS = 2
PACKAGES = ["slurm-wlm", "munge"]
# what the harness and the plugin call
TOOLS = ["slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol",
         "munged", "munge", "unmunge", "mungekey"]
DAEMONS = ["munged", "slurmctld", "slurmd", "slurmdbd"]
RUN_LIMIT_S = 1500  # the whole Snakemake run; killed with SIGKILL past it (it can hang deaf to SIGTERM)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def pids_named(name: str) -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == name:
                pids.add(int(proc.name))
        except OSError:
            pass
    return pids


def ensure_slurm() -> str:
    """Installs SLURM and munge when missing and allowed; skips the module with the reason when
    they are missing and cannot be installed. Returns what it did, for the test's output."""
    missing = missing_tools()
    if not missing:
        return "SLURM already installed"
    why_not = None
    if os.environ.get("PRUNE_DISTILL_SLURM_INSTALL", "1") == "0":
        why_not = "PRUNE_DISTILL_SLURM_INSTALL=0"
    elif os.geteuid() != 0:
        why_not = "not running as root"
    elif shutil.which("apt-get") is None:
        why_not = "no apt-get"
    if why_not:
        pytest.skip(f"SLURM not installed (missing {', '.join(missing)}) and not installing it: {why_not}")
    before = {d: pids_named(d) for d in DAEMONS}
    # (waits for another apt's lock; on a machine whose package lists are missing, updates them once)
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "--no-install-recommends", *PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    start = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if result.returncode != 0 and "Unable to locate package" in result.stderr:
            update = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, env=env, timeout=300)
            if update.returncode == 0:
                result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired as error:
        pytest.skip(f"SLURM not installed: `{' '.join(error.cmd)}` took over {error.timeout} s")
    finally:
        # A package whose install script started a daemon (where policy-rc.d allows it) would
        # leave it running after the test, and cluster-up.sh would take it for someone else's.
        for daemon, pids in before.items():
            for pid in pids_named(daemon) - pids:
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        pytest.skip(f"SLURM not installed: `{' '.join(command)}` failed ({result.returncode}):\n" + "\n".join(tail))
    still = missing_tools()
    if still:
        pytest.skip(f"installed {' '.join(PACKAGES)} but {', '.join(still)} still not found on PATH")
    return f"installed {' '.join(PACKAGES)} in {time.monotonic() - start:.1f} s"


def harness(script: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "STATE": str(STATE), "FAKE_GPUS": str(FAKE_GPUS)}
    return subprocess.run(["bash", str(HARNESS / script)], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def slurm_cluster():
    installed = ensure_slurm()
    if os.geteuid() != 0:
        pytest.skip("starting the test cluster needs root (it writes /etc/slurm/slurm.conf, starts munged and slurmd)")
    started: dict[str, int] = {}
    try:
        start = time.monotonic()
        up = harness("cluster-up.sh", timeout=180)
        up_seconds = time.monotonic() - start
        if up.returncode == 3:  # a SLURM that is not ours runs here: leave it alone
            pytest.skip(f"cannot start a test cluster: {up.stderr.strip()}")
        assert up.returncode == 0, f"the test cluster did not start:\n{up.stdout}\n{up.stderr}"
        started = {p.stem: int(p.read_text().strip()) for p in (STATE / "run").glob("*.pid")}
        cpus = subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%c"],
                              capture_output=True, text=True, timeout=30)
        print(f"\nslurm: {installed}; {up.stdout.strip()}; cluster up in {up_seconds:.1f} s")
        yield {"state": STATE, "log": STATE / "log", "up_seconds": up_seconds, "cpus": int(cpus.stdout)}
    finally:
        down = harness("cluster-down.sh", timeout=180)
        print(f"\nslurm: {down.stdout.strip()} {down.stderr.strip()}")
        left = {name: pid for name, pid in started.items() if pid in pids_named(name)}
        assert down.returncode == 0 and not left, f"daemons left running: {left}\n{down.stdout}\n{down.stderr}"


# The rules whose jobs ask for a GPU under device: auto (scores: the test gives every scorer one).
GPU_RULES = ("teachers", "pruned_teachers", "proxies", "scores", "students")


def make_profile(target: Path, students_per_job: int) -> Path:
    """slurm/config.yaml as a user gets it, with only what the one-node test cluster needs changed."""
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    # the test cluster's partition; it has no accounting, so no account either
    profile["default-resources"]["slurm_partition"] = "debug"
    del profile["default-resources"]["slurm_account"]
    profile["slurm-no-account"] = True
    # its fake GPUs have no type: take any GPU (what the profile says to do to take any GPU); its
    # one partition serves the CPU jobs too. The fake GPUs are no CUDA devices, so the experiment
    # trains on the CPU (device: cpu, tiny_config), and the training and scoring jobs are given a
    # GPU here as device: auto would ask for (device: auto would stop on a GPU torch cannot see)
    set_resources = {}
    for rule, resources in profile.get("set-resources", {}).items():
        resources = {k: ("debug" if k == "slurm_partition" else v) for k, v in resources.items() if k != "gpu_model"}
        if resources:
            set_resources[rule] = resources
    for rule in GPU_RULES:
        set_resources.setdefault(rule, {})["gpu"] = 1
    profile["set-resources"] = set_resources
    # no slurmdbd, so job states come from squeue (tests/slurm/cluster-up.sh says why)
    profile["slurm-status-command"] = "squeue"
    # seconds-long jobs: the first status check after 5 s rather than 40
    profile["slurm-init-seconds-before-status-checks"] = 5
    # one machine, no shared file system to wait for
    profile["latency-wait"] = 5
    # keep every job's SLURM log, to check below what ran where
    profile["slurm-keep-successful-logs"] = True
    # Group jobs ask for one member's CPUs, GPU and memory. Snakemake asks for the sum over the
    # members that could run side by side unless --cores caps it (it then stacks them in series:
    # max memory, summed runtime); but the SLURM job-step plugin runs a group's members one after
    # another anyway (it waits for each srun step). Without a cap, the profile's selection group
    # (12 jobs here) asks for 12 CPUs and 48 GB and pends forever on this 2-CPU node
    # (Reason=PartitionConfig). On a remote executor --cores caps each job's threads (all 1 in the
    # tiny configuration) and a group job's width, not how many jobs run at once.
    profile["cores"] = 1
    # Each SLURM job pays 6 to 10 s for the Snakemake started inside it (twice: once for the batch
    # script, once in the job step), more than a tiny student trains. Measured on this 2-CPU
    # machine, shared with other work: one job per student, 697 s for the whole run; students
    # 12 to a job asking for 2 CPUs, 676 s (the members ran in series); one bundle per CPU, as here,
    # 501 s. A user with a small dataset would bundle the same way (the profile's comment says how).
    profile["groups"] = ["students=students"]
    profile["group-components"] = [c for c in profile.get("group-components", []) if not c.startswith("students=")]
    profile["group-components"].append(f"students={students_per_job}")
    target.mkdir(parents=True)
    (target / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return target


def tiny_config(target: Path) -> Path:
    """tests/configs/tiny.yaml (device: cpu: its training and scoring jobs get a GPU from the profile)."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    assert config["device"] == "cpu"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def parse_jobcomp(path: Path) -> dict[str, dict[str, str]]:
    """jobcomp/filetxt lines (`JobId=1 UserId=root(0) ... JobState=COMPLETED Partition=debug ...`) by job id."""
    jobs = {}
    for line in path.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs[fields["JobId"]] = fields
    return jobs


def parse_tasks(path: Path) -> dict[str, dict[str, str]]:
    """tests/slurm's task prolog lines (`job=12 step=0 cuda_visible_devices=0`): {job id: {step: devices}}."""
    tasks: dict[str, dict[str, str]] = {}
    for line in path.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        tasks.setdefault(fields["job"], {})[fields["step"] or "batch"] = fields["cuda_visible_devices"]
    return tasks


# The SLURM jobs, by log folder: one per job of a rule; a group job per bundle: the 12 selection
# jobs, 10 subsets and 2 random draws (group-components: selection=64 in slurm/config.yaml), and the
# 36 students (the test's profile)
SINGLE_JOBS = {"rule_teachers": 1, "rule_proxies": 2, "rule_scores": 9, "rule_scores_summary": 1, "rule_galleries": 1,
               "rule_aggregate": 1}
GROUP_MEMBERS = {"group_selection_drawn_subsets_subsets": 12, "group_students_students": 36}
# gpu: 0; the others gpu: 1
CPU_JOBS = {"rule_scores_summary", "group_selection_drawn_subsets_subsets", "rule_galleries", "rule_aggregate"}


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(),
                    reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_tiny_configuration_through_the_slurm_profile(slurm_cluster, tmp_path):
    students_per_job = -(-GROUP_MEMBERS["group_students_students"] // slurm_cluster["cpus"])  # a bundle per CPU
    profile = make_profile(tmp_path / "profile", students_per_job)
    config = tiny_config(tmp_path / "tiny.yaml")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    command = ["timeout", "-s", "KILL", str(RUN_LIMIT_S), sys.executable, "-m", "snakemake",
               "--profile", str(profile), "--configfile", str(config), "--directory", str(work),
               "-s", str(REPO / "workflow" / "Snakefile")]
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    run_seconds = time.monotonic() - start
    output = result.stdout + result.stderr
    print(f"\nslurm: snakemake --profile ran in {run_seconds:.0f} s (rc {result.returncode})")
    assert result.returncode not in (-9, 137), (
        f"Snakemake killed (limit {RUN_LIMIT_S} s) after {run_seconds:.0f} s:\n{output[-3000:]}")
    assert result.returncode == 0, output[-5000:]

    # the results: the same table as the local tiny run (tests/test_workflow.py), computed on the
    # CPU, since the fake GPUs are not CUDA devices
    summary = pd.read_parquet(work / "results" / "tiny" / "summary.parquet")
    assert len(summary) == 36
    selections = [(s, "hardest") for s in ["el2n", "forgetting", "random", "teacher_ce"]]
    selections += [("teacher_ce", "medium"), ("el2n", "stratified")]
    assert set(map(tuple, summary[["scorer", "selector", "keep_fraction", "distillation"]].values)) == {
        (s, sel, f, d) for s, sel in selections for f in [0.1, 0.5] for d in ["kd", "kd_infobatch", "labels"]
    }
    assert sorted(summary["n_train"].unique()) == [60, 300]
    assert summary["final_test_acc"].between(0, 1).all()
    assert set(summary["device"]) == {"cpu"}

    # every job went through SLURM: Snakemake's submissions, by rule or group (their log folders) ...
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)\.$", output, re.M)
    by_rule: dict[str, list[str]] = {}
    for jobid, log in submitted:
        folder = Path(log).relative_to(work / ".snakemake" / "slurm_logs").parts[0]
        by_rule.setdefault(folder, []).append(jobid)
    counts = {rule: len(ids) for rule, ids in by_rule.items()}
    student_jobs = -(-GROUP_MEMBERS["group_students_students"] // students_per_job)
    assert counts == {**SINGLE_JOBS, "group_selection_drawn_subsets_subsets": 1,
                      "group_students_students": student_jobs}, counts
    # ... each completed on the test cluster's node and partition, under this run's job name ...
    jobcomp = parse_jobcomp(slurm_cluster["log"] / "jobcomp.txt")
    ids = [jobid for jobid, _ in submitted]
    assert set(ids) <= set(jobcomp)
    assert {jobcomp[i]["JobState"] for i in ids} == {"COMPLETED"}
    assert {jobcomp[i]["Partition"] for i in ids} == {"debug"}
    assert {jobcomp[i]["NodeList"] for i in ids} == {"localhost"}
    assert len({jobcomp[i]["Name"] for i in ids}) == 1  # Snakemake's run id
    # ... and every training and scoring job had a GPU: its job step (srun --gpus=1) and the batch
    # script see CUDA_VISIBLE_DEVICES naming one of the fake GPUs; the selection and summary jobs none
    tasks = parse_tasks(slurm_cluster["log"] / "tasks.log")
    gpu_ids = {str(i) for i in range(FAKE_GPUS)}
    for rule, jobids in by_rule.items():
        steps = 0
        for jobid in jobids:
            job_steps = dict(tasks.get(jobid, {}))
            assert job_steps.pop("batch", None) is not None, (rule, jobid, tasks.get(jobid))
            assert set(job_steps) == {str(i) for i in range(len(job_steps))}, (rule, jobid, tasks[jobid])
            steps += len(job_steps)
            if rule in CPU_JOBS:
                assert set(tasks[jobid].values()) == {"unset"}, (rule, jobid, tasks[jobid])
            else:
                assert set(job_steps.values()) <= gpu_ids, (rule, jobid, tasks[jobid])
                assert set(tasks[jobid]["batch"].split(",")) <= gpu_ids, (rule, jobid, tasks[jobid])
        # one job step per job of a rule: each group job ran its members, one srun step each
        assert steps == GROUP_MEMBERS.get(rule, len(jobids)), (rule, steps)
    # the teacher's SLURM log is the job's own Snakemake, which ran the teacher rule
    teacher_log = next((work / ".snakemake" / "slurm_logs" / "rule_teachers").rglob(f"{by_rule['rule_teachers'][0]}.log"))
    assert "rule teachers:" in teacher_log.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(),
                    reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_a_job_signalled_like_at_its_time_limit_is_resubmitted_and_resumes(slurm_cluster, tmp_path):
    """A teacher job gets SIGTERM from SLURM mid-training (what a time limit or a preemption sends
    before the kill): it saves its state and fails; the profile's retries resubmit it, and the new
    job continues from the saved state to the end."""
    profile = make_profile(tmp_path / "profile", students_per_job=1)
    config = yaml.safe_load((REPO / "tests" / "configs" / "reruns.yaml").read_text())
    epochs = 30  # about 15 s of training: the signal comes during the second epoch, long before the end
    # device: cpu with the profile's GPU (device: auto would, rightly, stop on the fake GPU)
    config.update(experiment="preempt", device="cpu", data={"dataset": "fashion_mnist", "train_limit": 6000, "test_limit": 200})
    config["teachers"]["t4"]["train"]["epochs"] = epochs
    (tmp_path / "preempt.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    command = ["timeout", "-s", "KILL", "600", sys.executable, "-m", "snakemake",
               "--profile", str(profile), "--configfile", str(tmp_path / "preempt.yaml"), "--directory", str(work),
               "-s", str(REPO / "workflow" / "Snakefile"), "results/preempt/teachers/t4/model.pt"]
    with open(tmp_path / "snakemake.log", "w") as out:
        run = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        saved = work / "results" / "preempt" / "teachers" / "t4" / "resume" / "fit.pt"
        deadline = time.monotonic() + 300
        while not saved.exists():  # the job has trained an epoch and saved its state
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "snakemake.log").read_text()[-3000:]
            time.sleep(0.2)
        first = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout.split()
        assert len(first) == 1, first
        subprocess.run(["scancel", "--signal=TERM", first[0]], check=True, timeout=30)
        returncode = run.wait(timeout=600)
    output = (tmp_path / "snakemake.log").read_text()
    assert returncode == 0, output[-5000:]

    submitted = re.findall(r"submitted with SLURM jobid (\d+)", output)
    assert len(submitted) == 2 and submitted[0] == first[0], submitted  # the job, then its resubmission
    jobcomp = parse_jobcomp(slurm_cluster["log"] / "jobcomp.txt")
    assert jobcomp[submitted[0]]["JobState"] == "FAILED" and jobcomp[submitted[1]]["JobState"] == "COMPLETED"
    log = (work / "logs" / "preempt" / "teachers" / "t4.log").read_text()  # the second job's
    assert "resume: continuing from" in log
    history = pd.read_parquet(work / "results" / "preempt" / "teachers" / "t4" / "epochs.parquet")
    assert history["epoch"].tolist() == list(range(1, epochs + 1))
    assert not saved.parent.exists()  # the finished job removed its saved state
