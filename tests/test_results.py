"""The tables and picks behind what the user reads, on hand-made inputs: the gallery's samples,
the students' per-epoch table, the rank correlation matrix, the results API's stage
folders and gains over a baseline, and the progress bar."""
import io

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import results
from pipeline.config import validate_config
from pipeline.jobs import Experiment
from pipeline.errors import UserError
from pipeline.io import write_table
from pipeline.progress import bar, progress_bar
from pipeline.stages.aggregate import with_run_keys
from pipeline.stages.galleries import gallery_picks
from pipeline.stages.scores_summary import rank_correlation, summarise

CONFIGS = Path(__file__).resolve().parent / "configs"


def test_gallery_picks_hardest_medium_easiest_of_kept_and_pruned():
    scores = pd.DataFrame({"sample_index": range(6), "label": [0, 0, 0, 0, 0, 1],
                           "score": [0.1, 0.9, 0.5, 0.3, 0.7, 0.2]})
    picks = gallery_picks(scores, np.array([1, 4, 2, 5]), [0, 1])
    # class 0 kept by score 1 (0.9), 4 (0.7), 2 (0.5); pruned 3 (0.3), 0 (0.1): medium = position n // 2
    # class 1: only sample 5, kept; nothing pruned
    assert picks[["label", "group", "rank", "sample_index"]].values.tolist() == [
        [0, "kept", "hardest", 1], [0, "kept", "medium", 4], [0, "kept", "easiest", 2],
        [0, "pruned", "hardest", 3], [0, "pruned", "medium", 0], [0, "pruned", "easiest", 0],
        [1, "kept", "hardest", 5], [1, "kept", "medium", 5], [1, "kept", "easiest", 5],
    ]
    assert picks["score"].iloc[0] == 0.9


def test_with_run_keys_puts_the_run_keys_in_front_and_unites_the_loss_terms():
    run = {"scorer": "el2n", "selector": "hardest", "keep_fraction": 0.1, "seed": 0, "final_test_acc": 0.5}
    labels = pd.DataFrame([{**run, "distillation": "labels"}])
    kd = pd.DataFrame([{**run, "distillation": "kd"}])
    history = pd.DataFrame({"epoch": [1, 2], "train_ce": [2.0, 1.0]})
    table = with_run_keys([kd, labels], [history.assign(train_kd=[0.5, 0.25]), history], "epoch")
    assert table.columns.tolist() == [*results.RUN_KEYS, "epoch", "train_ce", "train_kd"]
    # sorted by the keys: kd before labels
    assert table[["distillation", "epoch"]].values.tolist() == [["kd", 1], ["kd", 2], ["labels", 1], ["labels", 2]]
    assert table["train_kd"].tolist()[:2] == [0.5, 0.25] and table["train_kd"].iloc[2:].isna().all()


def test_rank_correlation_matrix_from_the_summary():
    tables = {name: pd.DataFrame({"sample_index": range(4), "label": [0, 0, 1, 1], "score": score})
              for name, score in [("a", [1.0, 2.0, 3.0, 4.0]), ("b", [4.0, 3.0, 2.0, 1.0]), ("c", [1.0, 2.0, 4.0, 3.0])]}
    matrix = rank_correlation(summarise(tables))
    # Spearman of ranks (1 2 3 4) and (1 2 4 3): 1 - 6 * (0 + 0 + 1 + 1) / (4 * 15) = 0.8
    assert matrix.index.tolist() == matrix.columns.tolist() == ["a", "b", "c"]
    assert matrix.to_numpy() == pytest.approx(np.array([[1, -1, 0.8], [-1, 1, -0.8], [0.8, -0.8, 1]]))


def test_an_experiments_shared_tables_are_found_from_its_recorded_config(tmp_path):
    """scores() and teacher_epochs() read the experiment's own files in results/shared (named by
    their specs), found from the config the aggregate recorded, not another experiment's there."""
    raw = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    raw["scorers"] = {"el2n": {}, "random": {}}
    raw["selection"]["selectors"] = {"hardest": ["el2n", "random"]}
    config = validate_config(raw)
    exp = Experiment(config)
    folder = tmp_path / "results" / "tiny"
    write_table(pd.DataFrame({"seed": [0]}), folder / "summary.parquet", {"spec": config})
    for scorer, score in [("el2n", [0.5, 0.25]), ("random", [0.1, 0.9]), ("another_experiments", [0.0, 0.0])]:
        table = pd.DataFrame({"sample_index": [0, 1], "label": [3, 4], "score": score, "scorer": scorer})
        place = exp.scores(scorer).place if scorer in config["scorers"] else "scores/el2n-000000000000"
        write_table(table, tmp_path / "results" / "shared" / f"{place}.parquet", {"stage": "scores"})
    write_table(pd.DataFrame({"epoch": [1, 2], "test_acc": [0.5, 0.6]}),
                tmp_path / "results" / "shared" / exp.teacher("t4").place / "epochs.parquet", {"stage": "teacher"})
    table = results.scores(folder)
    assert table.dtypes.map(str).to_dict() == results.SCORES
    assert table[["scorer", "score"]].values.tolist() == [["el2n", 0.5], ["el2n", 0.25], ["random", 0.1], ["random", 0.9]]
    assert results.teacher_epochs(folder)[["teacher", "epoch"]].values.tolist() == [["t4", 1], ["t4", 2]]


def test_compare_reads_the_summary_and_gives_each_settings_gain_with_its_interval(tmp_path):
    rows = [("random", "random", "labels", None, seed, acc) for seed, acc in enumerate([0.70, 0.70, 0.70])]
    rows += [("el2n", "hardest", "labels", None, seed, acc) for seed, acc in enumerate([0.72, 0.74, 0.76])]
    rows += [("el2n", "hardest", "kd", "t", seed, acc) for seed, acc in enumerate([0.80, 0.80])]
    runs = pd.DataFrame(rows, columns=["scorer", "selector", "distillation", "teacher", "seed", "final_test_acc"])
    runs.assign(keep_fraction=0.1, infobatch_ratio=np.nan).to_parquet(tmp_path / "summary.parquet")
    table = results.compare(tmp_path)
    assert table.columns.tolist() == ["scorer", "selector", "distillation", "keep_fraction", "mean", "baseline_mean",
                                      "gain", "low", "high", "seeds", "baseline_seeds", "paired"]
    # el2n labels against random labels, paired: differences 0.02, 0.04, 0.06 -> 0.04 ± 4.30265 * 0.02 / sqrt(3)
    el2n = table[(table["scorer"] == "el2n") & (table["distillation"] == "labels")].iloc[0]
    assert el2n[["gain", "low", "high"]].tolist() == pytest.approx([0.04, 0.04 - 0.0496828, 0.04 + 0.0496828], abs=1e-6)
    assert el2n["paired"]
    # kd has no random subset to compare with
    assert table.loc[table["distillation"] == "kd", "gain"].isna().all()
    # kd over labels on el2n/hardest: seeds 0, 1 against 0, 1, 2 -> Welch, 0.80 - 0.74
    kd = results.compare(tmp_path, baseline="labels").set_index("distillation").loc["kd"]
    assert kd["gain"] == pytest.approx(0.06) and not kd["paired"] and kd["seeds"] == 2 and kd["baseline_seeds"] == 3
    with pytest.raises(UserError, match="^unknown baseline 'best'; allowed: random, labels$"):
        results.compare(tmp_path, baseline="best")


def test_the_summary_declares_the_gain_and_cost_columns():
    floats = ["gain_over_random", "gain_over_labels_high", "pipeline_seconds"]
    assert {results.SUMMARY[c] for c in floats} == {"float64"}
    assert results.SUMMARY["full_data_seconds_estimated"] == "boolean"
    assert results.SUMMARY["teacher_outputs_bytes"] == results.SUMMARY["subset_draw"] == "Int64"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    log = io.StringIO()
    assert list(progress_bar(range(3), 3, "epoch 1/2", log)) == [0, 1, 2]
    assert log.getvalue() == ""  # a log file keeps its one line per epoch
    terminal = Terminal()
    assert list(progress_bar(range(3), 3, "epoch 1/2", terminal)) == [0, 1, 2]
    text = terminal.getvalue()
    assert "epoch 1/2 [" + "#" * 30 + "] 3/3, 0s left" in text and text.endswith("\r\033[K")


def test_bar_shows_the_share_done_and_the_time_left():
    # 1 of 4 steps in 2 s: 8 of 30 characters (7.5 rounded to even), 3 steps x 2 s left
    assert bar("scoring", 1, 4, 2.0) == "scoring [" + "#" * 8 + " " * 22 + "] 1/4, 6s left"


def test_subsets_reads_the_drawn_subsets_with_their_draw(tmp_path):
    fixed = pd.DataFrame({"sample_index": [1, 3], "label": [0, 1], "scorer": "el2n", "selector": "hardest",
                          "keep_fraction": 0.5})
    drawn = pd.DataFrame({"sample_index": [2], "label": [1], "scorer": "random", "selector": "hardest",
                          "keep_fraction": 0.5, "draw": 10})
    write_table(fixed, tmp_path / "subsets" / "el2n" / "hardest" / "keep0.5.parquet", {})
    write_table(drawn, tmp_path / "subsets" / "random" / "hardest" / "keep0.5" / "draw10.parquet", {})
    table = results.subsets(tmp_path)
    assert table["scorer"].tolist() == ["el2n", "el2n", "random"] and str(table["draw"].dtype) == "Int64"
    assert table["draw"].isna().tolist() == [True, True, False] and table["draw"].iloc[2] == 10
