"""The tiny configuration end to end on a real SLURM, through the profile users get
(`snakemake --profile slurm`), with only what a one-node test cluster needs overridden (the one
full run; its students packed into one cluster job per CPU); a training job signalled as at a time
limit, resubmitted by the profile, resuming its saved state; and students packed into one cluster
job, one of which fails, the others keeping their outputs.

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


def make_profile(target: Path, students_per_job: int, selections_per_job: int | None = None) -> Path:
    """slurm/config.yaml as a user gets it, with only what the one-node test cluster needs changed
    (and the students packed `students_per_job` to a cluster job, as its comment says how)."""
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
    if selections_per_job is not None:  # the profile's selection=64 would put them all in one job
        profile["group-components"] = [c if not c.startswith("selection=") else f"selection={selections_per_job}"
                                       for c in profile["group-components"]]
    target.mkdir(parents=True)
    (target / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return target


def tiny_config(target: Path) -> Path:
    """tests/configs/tiny.yaml (device: cpu: its training and scoring jobs get a GPU from the
    profile), cut to every kind of job once or twice, for CI time: the proxies and a scorer that
    reads them, a scorer that reads the teacher's dynamics, a random draw per student seed, two keep
    fractions, students with and without the teacher."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    assert config["device"] == "cpu"
    config["scorers"] = {"random": {}, "el2n": {}, "forgetting": {}}
    config["selection"]["selectors"] = {"hardest": ["random", "el2n", "forgetting"]}
    config["distillation"] = {name: config["distillation"][name] for name in ("labels", "kd")}
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


def students_in_slurm_log(work: Path, jobid: str) -> set[str]:
    """The students a SLURM job's Snakemake ran (by wildcards), from the job's log."""
    log = next((work / ".snakemake" / "slurm_logs").rglob(f"{jobid}.log")).read_text()
    return set(re.findall(r"^\s*wildcards: (scorer=.*seed=\d+)$", log, re.M))


# The SLURM jobs, by log folder: one per job of a rule; a group job per bundle: the 6 selection
# jobs, 4 subsets and 2 random draws (the profile's group-components: selection=64 would make one
# job of them; here one bundle per CPU, as for the students), and the 12 students (the test's profile)
SINGLE_JOBS = {"rule_teachers": 1, "rule_proxies": 2, "rule_scores": 3, "rule_scores_summary": 1, "rule_galleries": 1,
               "rule_aggregate": 1}
GROUP_MEMBERS = {"group_selection": 6, "group_students": 12}
# gpu: 0; the others gpu: 1
CPU_JOBS = {"rule_scores_summary", "group_selection", "rule_galleries", "rule_aggregate"}


def job_kind(log_folder: str) -> str:
    """A SLURM log folder's rule, or its group: Snakemake names a bundle's folder by the group and
    the rules of the members it happened to hold (group_selection_subsets,
    group_selection_drawn_subsets_subsets), which depends on which jobs were ready together."""
    return next((group for group in GROUP_MEMBERS if log_folder.startswith(group + "_")), log_folder)


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(),
                    reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_tiny_configuration_through_the_slurm_profile(slurm_cluster, tmp_path):
    # a bundle per CPU: the members of a bundle run one after another (each an srun step with its own
    # Snakemake, 6 to 10 s here), so one bundle of the 12 selection jobs would hold up the students
    # for about 100 s on this machine; two side by side take half that
    per_job = {group: -(-members // slurm_cluster["cpus"]) for group, members in GROUP_MEMBERS.items()}
    profile = make_profile(tmp_path / "profile", per_job["group_students"], per_job["group_selection"])
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
    assert len(summary) == 12
    assert set(map(tuple, summary[["scorer", "selector", "keep_fraction", "distillation"]].values)) == {
        (s, "hardest", f, d) for s in ["el2n", "forgetting", "random"] for f in [0.1, 0.5] for d in ["kd", "labels"]
    }
    assert sorted(summary["n_train"].unique()) == [60, 300]
    assert summary["final_test_acc"].between(0, 1).all()
    assert set(summary["device"]) == {"cpu"}

    # every job went through SLURM: Snakemake's submissions, by rule or group (their log folders) ...
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)\.$", output, re.M)
    by_rule: dict[str, list[str]] = {}
    for jobid, log in submitted:
        folder = Path(log).relative_to(work / ".snakemake" / "slurm_logs").parts[0]
        by_rule.setdefault(job_kind(folder), []).append(jobid)
    assert {rule: len(ids) for rule, ids in by_rule.items() if rule not in GROUP_MEMBERS} == SINGLE_JOBS, by_rule
    # a bundle holds at most its share of the jobs ready together, so there are at least
    # members / share bundles (more when fewer were ready at once)
    for group, members in GROUP_MEMBERS.items():
        assert -(-members // per_job[group]) <= len(by_rule[group]) <= members, (group, by_rule[group])
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
            assert len(job_steps) <= per_job.get(rule, 1), (rule, jobid, tasks[jobid])
            if rule in CPU_JOBS:
                assert set(tasks[jobid].values()) == {"unset"}, (rule, jobid, tasks[jobid])
            else:
                assert set(job_steps.values()) <= gpu_ids, (rule, jobid, tasks[jobid])
                assert set(tasks[jobid]["batch"].split(",")) <= gpu_ids, (rule, jobid, tasks[jobid])
        # one job step per job of a rule: each group job ran its members, one srun step each
        assert steps == GROUP_MEMBERS.get(rule, len(jobids)), (rule, steps)
    # the students, packed: each bundle's SLURM log names the students that ran in it, as many as
    # its job steps, each student in one bundle only, and each wrote its own log
    packed = {jobid: students_in_slurm_log(work, jobid) for jobid in by_rule["group_students"]}
    assert all(len(names) == len(tasks[jobid]) - 1 for jobid, names in packed.items()), packed
    assert sum(len(names) for names in packed.values()) == len(set().union(*packed.values())) == 12
    assert len(list((work / "logs" / "tiny" / "students").rglob("*.log"))) == 12
    # the teacher's SLURM log is the job's own Snakemake, which ran the teacher rule
    teacher_log = next((work / ".snakemake" / "slurm_logs" / "rule_teachers").rglob(f"{by_rule['rule_teachers'][0]}.log"))
    assert "rule teachers:" in teacher_log.read_text()


def snakemake_command(profile: Path, configfile: Path, work: Path, *targets: str, limit: int = RUN_LIMIT_S):
    """`snakemake --profile` on the test cluster (killed with SIGKILL past `limit` s) and its environment."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    command = ["timeout", "-s", "KILL", str(limit), sys.executable, "-m", "snakemake",
               "--profile", str(profile), "--configfile", str(configfile), "--directory", str(work),
               "-s", str(REPO / "workflow" / "Snakefile"), *targets]
    return command, env


def wait_for(condition, run: subprocess.Popen, log: Path, timeout: float = 300):
    """Polls `condition` (a callable) until it returns something true, while Snakemake runs."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(),
                    reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_a_job_signalled_like_at_its_time_limit_is_resubmitted_and_resumes(slurm_cluster, tmp_path):
    """A teacher job gets SIGTERM from SLURM mid-training (what a time limit or a preemption sends
    before the kill): it saves its state and fails; the profile's retries resubmit it, and the new
    job continues from the saved state to the end. Only the teacher runs (`--until teachers`), and
    its files are found by globbing, wherever the workflow keeps a teacher."""
    profile = make_profile(tmp_path / "profile", students_per_job=1)
    config = yaml.safe_load((REPO / "tests" / "configs" / "reruns.yaml").read_text())
    # 0.5 to 1 s an epoch here: the signal comes as soon as the first epoch's state is on disk,
    # seconds before the end (a SIGTERM takes effect after the current step); the resubmitted job
    # then ends within the plugin's third status check (45 s after it is submitted)
    epochs = 6
    # device: cpu with the profile's GPU (device: auto would, rightly, stop on the fake GPU)
    config.update(experiment="preempt", device="cpu", data={"dataset": "fashion_mnist", "train_limit": 6000, "test_limit": 200})
    config["teachers"]["t4"]["train"]["epochs"] = epochs
    (tmp_path / "preempt.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    command, env = snakemake_command(profile, tmp_path / "preempt.yaml", work, "--until", "teachers", limit=600)
    log_path = tmp_path / "snakemake.log"
    with open(log_path, "w") as out:
        run = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        # the job has trained an epoch and saved its state
        saved = wait_for(lambda: next(work.glob("results/**/resume/fit.pt"), None), run, log_path)
        first = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout.split()
        assert len(first) == 1, first
        subprocess.run(["scancel", "--signal=TERM", first[0]], check=True, timeout=30)
        returncode = run.wait(timeout=600)
    output = log_path.read_text()
    assert returncode == 0, output[-5000:]

    submitted = re.findall(r"submitted with SLURM jobid (\d+)", output)
    assert len(submitted) == 2 and submitted[0] == first[0], submitted  # the job, then its resubmission
    jobcomp = parse_jobcomp(slurm_cluster["log"] / "jobcomp.txt")
    assert jobcomp[submitted[0]]["JobState"] == "FAILED" and jobcomp[submitted[1]]["JobState"] == "COMPLETED"
    # the teacher's log (the second job's) says it resumed
    assert [log for log in work.glob("logs/**/*.log") if "resume: continuing from" in log.read_text()]
    (epochs_table,) = work.glob("results/**/epochs.parquet")
    assert saved.parent.parent == epochs_table.parent  # the saved state was the teacher's
    history = pd.read_parquet(epochs_table)
    assert history["epoch"].tolist() == list(range(1, epochs + 1))
    assert not saved.parent.exists()  # the finished job removed its saved state


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(),
                    reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)")
def test_students_packed_into_one_job_and_a_failed_one_loses_nothing_of_the_others(slurm_cluster, tmp_path):
    """Three students packed into one SLURM job as slurm/config.yaml's comment says how (a job
    group with keep-incomplete), one of which fails (its subset damaged after the pack started):
    the students ran in the one allocation, an srun step each, each wrote its own outputs and log,
    and those that finished keep their outputs (without keep-incomplete, Snakemake deletes the
    outputs of every member of a failed group job). Members after the failed one in the pack's
    order do not run in that job (the job's Snakemake stops at a failure): their outputs are the
    next run's. Labels-only students on random draws: no teacher, proxies or scorers to wait for."""
    seeds = [0, 1, 2]
    profile = make_profile(tmp_path / "profile", students_per_job=len(seeds))
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings["keep-incomplete"] = True  # what the profile's comment on packing students says to add
    settings["retries"] = 0  # a damaged input fails again: a resubmission would only rerun the pack
    # stop at the failure, which Snakemake then says (below) once it has dealt with the failed job
    settings["keep-going"] = False
    (profile / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config.update(experiment="pack", scorers={"random": {}}, distillation={"labels": {"loss": "ce"}},
                  selection={"keep_fractions": [0.1], "selectors": {"hardest": ["random"]}})
    config["student"]["seeds"] = seeds
    (tmp_path / "pack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    command, env = snakemake_command(profile, tmp_path / "pack.yaml", work, "--until", "students", limit=600)
    # the random draws first, here (seconds); then only the students go to SLURM
    drawn = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(tmp_path / "pack.yaml"),
                            "--directory", str(work), "-s", str(REPO / "workflow" / "Snakefile"), "--until", "drawn_subsets"],
                           env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert drawn.returncode == 0, (drawn.stdout + drawn.stderr)[-3000:]
    students = work / "results" / "pack" / "students" / "random" / "hardest" / "keep0.1" / "labels"
    logs = work / "logs" / "pack" / "students" / "random" / "hardest" / "keep0.1" / "labels"
    subsets = work / "results" / "pack" / "subsets" / "random" / "hardest" / "keep0.1"
    assert sorted(p.name for p in subsets.glob("*.parquet")) == [f"draw{s}.parquet" for s in seeds]

    log_path = tmp_path / "snakemake.log"
    with open(log_path, "w") as out:
        run = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                               start_new_session=True)
        try:
            # a student of the pack has finished; one that has not started yet gets a damaged subset
            # (a student's log appears when its command starts, seconds after the previous one ended)
            wait_for(lambda: any(students.glob("seed*/run.parquet")), run, log_path)
            failed = next(s for s in reversed(seeds) if not (logs / f"seed{s}.log").exists())
            damaged = subsets / f"draw{failed}.parquet"
            damaged.write_bytes(damaged.read_bytes()[:100])
            # Snakemake has handled the failed pack (and would have deleted outputs) when it says it
            # shuts down; it then sleeps out the plugin's status-check interval (tens of seconds,
            # grown while the pack ran) before it exits, so it is stopped here
            wait_for(lambda: "Shutting down" in log_path.read_text(), run, log_path, timeout=600)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, 9)
            run.wait(timeout=60)
    output = log_path.read_text()

    # one SLURM job for the pack, failed ...
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)\.$", output, re.M)
    assert len(submitted) == 1 and "group_students_students" in submitted[0][1], submitted
    jobid = submitted[0][0]
    assert parse_jobcomp(slurm_cluster["log"] / "jobcomp.txt")[jobid]["JobState"] == "FAILED"
    # ... in which every student its Snakemake started ran, one srun step each, and wrote its log
    ran = students_in_slurm_log(work, jobid)
    started = [s for s in seeds if f"scorer=random, selector=hardest, keep=0.1, distill=labels, seed={s}" in ran]
    assert len(started) == len(ran) and all((logs / f"seed{s}.log").exists() for s in started), (ran, started)
    deadline = time.monotonic() + 10  # (the task prolog's lines of a step killed with the pack come late)
    while len(steps := parse_tasks(slurm_cluster["log"] / "tasks.log")[jobid]) < len(started) + 1 \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sorted(steps) == sorted(["batch", *map(str, range(len(started)))]), (steps, started)
    # the failed student: its log says why, and it left no outputs
    assert failed in started
    assert str(damaged.relative_to(work)) in (logs / f"seed{failed}.log").read_text()
    assert not any((students / f"seed{failed}" / name).exists()
                   for name in ["run.parquet", "epochs.parquet", "per_class.parquet", "model.pt"])
    # the others that ran finished and keep their own outputs, none removed with the failed job's
    finished = [s for s in started if s != failed]
    assert finished
    for s in finished:
        assert "final test accuracy" in (logs / f"seed{s}.log").read_text()
        assert len(pd.read_parquet(students / f"seed{s}" / "run.parquet")) == 1
        assert not pd.read_parquet(students / f"seed{s}" / "epochs.parquet").empty
        assert not pd.read_parquet(students / f"seed{s}" / "per_class.parquet").empty
        assert (students / f"seed{s}" / "model.pt").stat().st_size > 0
    assert "Removing output files of failed job" not in output
    # the pack's members after the failed one did not run in this job
    for s in set(seeds) - set(started):
        assert not (students / f"seed{s}" / "run.parquet").exists()
