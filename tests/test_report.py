"""What the user reads, from one small finished run (tests/configs/report.yaml): each stage folder
reads as one table with its keys as typed columns, every Parquet file carries its provenance, the
Snakemake report holds every plot and table with its caption, and it shows in a headless Chromium
(installed from Debian's packages when missing and this runs as root; skipped with the reason
otherwise)."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import results as api
from pipeline.io import read_meta
from test_workflow import FASHION_MNIST, REPO, snakemake

CONFIG = REPO / "tests" / "configs" / "report.yaml"
PLOTS = ["plots/accuracy_vs_keep_fraction.png", "plots/kd_gain.png", "plots/gain_over_random.png",
         "plots/accuracy_vs_cost.png", "plots/gallery/hardest.png",
         "plots/gallery/medium.png", "plots/scorer_rank_correlation.png", "plots/score_histograms.png",
         "study.png", "study.html"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's dataset-fashion-mnist (scripts/setup.sh installs it)"),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The working directory of the finished run."""
    work = tmp_path_factory.mktemp("report")
    result = snakemake(work, "--cores", "2", "--configfile", str(CONFIG))
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def test_stage_folders_read_as_one_table(finished):
    results = finished / "results" / "report"
    # 3 scorers x 600 training samples, keys as columns of the files (not string partitions)
    scores = api.scores(results)  # the experiment's scores in results/shared
    assert scores.dtypes.map(str).to_dict() == api.SCORES
    assert scores.groupby("scorer")["sample_index"].apply(list).to_dict() == {
        s: list(range(600)) for s in ["forgetting", "random", "teacher_ce"]}
    # (forgetting, hardest), (teacher_ce, hardest), (teacher_ce, medium) at f = 0.1 and 0.5: 60 and 300 kept
    subsets = pd.read_parquet(results / "subsets")  # no random draws here, so no draw column
    assert subsets.dtypes.map(str).to_dict() == {k: v for k, v in api.SUBSETS.items() if k != "draw"}
    assert subsets.groupby(["scorer", "selector", "keep_fraction"]).size().to_dict() == {
        (s, sel, f): round(600 * f) for s, sel in [("forgetting", "hardest"), ("teacher_ce", "hardest"),
                                                    ("teacher_ce", "medium")] for f in [0.1, 0.5]}
    # 3 selections x 2 keep fractions x 2 settings x 1 seed, one epoch each
    epochs = pd.read_parquet(results / "epochs.parquet")
    assert set(epochs.columns) == set(api.EPOCHS) | {"train_ce", "train_kd"}
    assert epochs[list(api.EPOCHS)].dtypes.map(str).to_dict() == api.EPOCHS
    assert len(epochs) == 12 and not epochs.duplicated(list(api.RUN_KEYS)).any() and set(epochs["epoch"]) == {1}
    assert epochs[epochs["distillation"] == "labels"]["train_kd"].isna().all()
    assert epochs[epochs["distillation"] == "kd"]["train_kd"].notna().all()
    # the API gives the same tables, typed as documented
    summary = api.summary(results)
    assert {c: str(t) for c, t in summary.dtypes.items() if c in api.SUMMARY} == api.SUMMARY
    assert len(summary) == 12 and summary["teacher"].isna().sum() == 6
    pd.testing.assert_frame_equal(api.epochs(results), epochs)
    assert len(api.scores(results)) == 1800 and len(api.subsets(results)) == 1080
    spearman = api.scores_summary(results).query("statistic == 'spearman'")
    assert len(spearman) == 9 and (spearman[spearman["scorer"] == spearman["other"]]["value"] == 1.0).all()
    assert api.teacher_epochs(results)[["teacher", "epoch"]].values.tolist() == [["t4", 1], ["t4", 2]]


def test_every_table_carries_its_config_code_version_and_data(finished):
    tables = sorted((finished / "results").rglob("*.parquet"))  # the experiment's and the shared ones
    # scores, subsets, students (run, epochs, per class), teacher (epochs, dynamics, class std), scores
    # summary, aggregate (summary, epochs, per class, costs, study)
    assert len(tables) == 3 + 6 + 36 + 3 + 1 + 5
    fingerprints = set()
    for path in tables:
        meta = read_meta(path)
        assert {"spec", "config_hash", "code_version", "dataset_fingerprint"} <= set(meta), path
        assert isinstance(meta["spec"], dict) and meta["spec"], path
        fingerprints.add(meta["dataset_fingerprint"])
    assert len(fingerprints) == 1


def test_readme_example_names_the_best_scorer_with_kd(finished):
    """The README's pandas example, at f = 0.5 (this run's larger keep fraction), agrees with the
    study table's means."""
    summary = pd.read_parquet(finished / "results" / "report" / "summary.parquet")
    kd = summary.query("keep_fraction == 0.5 and distillation == 'kd'")
    best = kd.groupby(["scorer", "selector"])["final_test_acc"].mean().idxmax()
    study = pd.read_parquet(finished / "results" / "report" / "study.parquet")
    means = study.query("keep_fraction == 0.5 and distillation == 'kd'").set_index(["scorer", "selector"])["mean"]
    assert means.loc[best] == means.max() == pytest.approx(100 * kd["final_test_acc"].max())


@pytest.fixture(scope="module")
def report(finished) -> Path:
    path = finished / "report.html"
    result = snakemake(finished, "--configfile", str(CONFIG), "--report", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    return path


def report_results(path: Path) -> dict:
    """The results a Snakemake report embeds: {file: {data, caption, mime_type, ...}}."""
    text = path.read_text()
    start = text.index("var results = {") + len("var results = ")
    return json.JSONDecoder().raw_decode(text, start)[0]


def test_report_holds_every_plot_and_table_with_its_caption(finished, report):
    embedded = report_results(report)
    assert set(embedded) == {f"results/report/{p}" for p in PLOTS}
    for name, entry in embedded.items():
        kind, data = entry["data_uri"].split(",", 1)
        assert kind == f"data:{entry['mime_type']};charset=utf8;filename={Path(name).name};base64", name
        assert base64.b64decode(data) == (finished / name).read_bytes(), name  # the file itself
        assert len(entry["caption"]) > 100, name
    assert embedded["results/report/plots/kd_gain.png"]["caption"].startswith("<p>KD gain: the mean final test accuracy")


def chromium() -> str:
    """The Chromium binary; installs Debian's chromium when missing and this runs as root."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed, and installing it needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "chromium", "chromium-driver"]
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0 and "Unable to locate package" in result.stderr:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=300)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if result.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"chromium not installed: {' '.join(install)} failed:\n{result.stderr[-2000:]}")
    return shutil.which("chromium")


# matplotlib's first four line colours, which the accuracy plot draws (one line each here)
LINE_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def test_report_shows_a_plot_in_a_browser(report, tmp_path):
    """A headless Chromium screenshot of the report opened at the accuracy plot (a copy of the
    report that calls, once loaded, what the plot's button in the report calls) shows the plot:
    hundreds of pixels in each of its lines' colours, none of which the report's own page uses."""
    browser = chromium()
    plot = "results/report/plots/accuracy_vs_keep_fraction.png"
    opened = f"""<script>window.addEventListener("load", () => setTimeout(() => {{
        app.showCategory("Students");
        app.setView({{content: "img", contentPath: results["{plot}"].data_uri, resultPath: "{plot}"}});
    }}, 200));</script>"""
    page, end = report.read_text().rsplit("</body>", 1)
    (tmp_path / "report.html").write_text(page + opened + "</body>" + end)
    shots = {}
    for name, html in [("front", report), ("plot", tmp_path / "report.html")]:
        shots[name] = Path(os.environ.get("PRUNE_DISTILL_SCREENSHOTS", tmp_path)) / f"report_{name}.png"
        result = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000",
             f"--screenshot={shots[name]}", "--window-size=1400,1000", html.as_uri()],
            capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and shots[name].exists(), result.stderr[-2000:]
    counts = {}
    for name, shot in shots.items():
        pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")).reshape(-1, 3)
        assert pixels.shape[0] == 1400 * 1000
        counts[name] = [int((pixels == colour).all(axis=1).sum()) for colour in LINE_COLOURS]
    assert counts["front"] == [0, 0, 0, 0]  # the front page: the rule graph and the workflow's description
    assert min(counts["plot"]) > 300, counts
