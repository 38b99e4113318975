"""The study's tables from a hand-made summary: accuracy per compared setting and keep fraction
(mean ± std over seeds and the t-interval of the mean, in %), which setting is best or which are
tied for the top, its Markdown and HTML, the defaults of what it compares and its
title, and the KD gain over labels-only training."""
import re

import numpy as np
import pandas as pd
import pytest

from pipeline import study

COLUMNS = ["distillation", "keep_fraction", "seed", "final_test_acc", "teacher", "teacher_test_acc", "teacher_sparsity",
           "student", "student_params"]


def summary() -> pd.DataFrame:
    """Labels only and KD from teacher t4, at f = 0.1 (two seeds each) and 0.5 (labels: one seed)."""
    labels = ["labels", None, np.nan, np.nan, "cnn_w8", 6000]
    kd = ["kd", "t4", 0.9031, 0.0, "cnn_w8", 6000]
    rows = [
        [labels[0], 0.1, 0, 0.50, *labels[1:]], [labels[0], 0.1, 1, 0.60, *labels[1:]],
        [kd[0], 0.1, 0, 0.70, *kd[1:]], [kd[0], 0.1, 1, 0.80, *kd[1:]],
        [labels[0], 0.5, 0, 0.80, *labels[1:]],
        [kd[0], 0.5, 0, 0.84, *kd[1:]], [kd[0], 0.5, 1, 0.86, *kd[1:]],
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_study_table_is_mean_std_and_seeds_in_percent_per_setting_and_keep_fraction():
    table = study.study_table(summary(), ["distillation"])
    assert table.columns.tolist() == ["distillation", "keep_fraction", "mean", "std", "seeds", "ci_low", "ci_high",
                                      "verdict", *study.SETTING_COLUMNS]
    assert table[["distillation", "keep_fraction", "seeds"]].values.tolist() == [
        ["kd", 0.1, 2], ["kd", 0.5, 2], ["labels", 0.1, 2], ["labels", 0.5, 1]]
    # means of (70, 80), (84, 86), (50, 60), (80); sample std of two values a, b is |a - b| / sqrt(2)
    assert table["mean"].tolist() == pytest.approx([75.0, 85.0, 55.0, 80.0])
    assert table["std"].iloc[:3].tolist() == pytest.approx([10 / 2**0.5, 2 / 2**0.5, 10 / 2**0.5])
    assert np.isnan(table["std"].iloc[3])  # one seed
    # 95 % t-interval: mean ± t(0.975, 1) * std / sqrt(2); for (70, 80): 12.7062047 * 7.0710678 / 1.4142136 = 63.5310
    assert table["ci_low"].iloc[:3].tolist() == pytest.approx([75 - 63.5310, 85 - 12.7062, 55 - 63.5310], abs=1e-4)
    assert table["ci_high"].iloc[:3].tolist() == pytest.approx([75 + 63.5310, 85 + 12.7062, 55 + 63.5310], abs=1e-4)
    assert table[["ci_low", "ci_high"]].iloc[3].isna().all()
    # kd's and labels' intervals overlap at f = 0.1; labels has one seed at f = 0.5
    assert table["verdict"].tolist() == ["tied"] * 4
    assert table["teacher"].tolist()[:2] == ["t4", "t4"] and table["teacher"].iloc[2:].isna().all()
    assert table["student_params"].tolist() == [6000] * 4


def test_markdown_names_the_settings_tied_for_the_top_when_their_intervals_overlap():
    table = study.study_table(summary(), ["distillation"])
    assert study.markdown(table, ["distillation"], "my study") == "\n".join([
        "### my study",
        "",
        "| keep fraction | kd | labels | best |",
        "|---|---|---|---|",
        "| 0.1 | 75.00 ± 7.07 [11.47, 138.53] (n=2) | 55.00 ± 7.07 [-8.53, 118.53] (n=2) | tied: kd, labels |",
        "| 0.5 | 85.00 ± 1.41 [72.29, 97.71] (n=2) | 80.00 (n=1) | tied: kd, labels (n=1) |",
        "",
        ("Final-epoch test accuracy (%), mean ± std over seeds [95 % t-interval of the mean] (n = number of seeds). "
         "A setting is best in its keep fraction (bold) only when its interval overlaps no other setting's; "
         "otherwise the settings whose intervals overlap the top mean's interval are tied. "
         "With one seed there is no interval: such a setting ties with the top one, and is never best."),
        "",
        "| setting | teacher | teacher_test_acc | teacher_sparsity | student | student_params |",
        "|---|---|---|---|---|---|",
        "| kd | t4 | 0.9031 | 0.0000 | cnn_w8 | 6000 |",
        "| labels | - | - | - | cnn_w8 | 6000 |",
    ]) + "\n"


def test_html_has_a_row_per_keep_fraction_and_a_column_per_setting():
    page = study.html(study.study_table(summary(), ["distillation"]), ["distillation"], "my study")
    assert page.startswith("<html><head><meta charset='utf-8'><title>my study</title></head><body><h3>my study</h3>")
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)
    cells = [re.findall(r"<t[hd]>(.*?)</t[hd]>", row) for row in rows]
    assert cells == [["setting", "kd", "labels", "best"], ["keep_fraction", "", "", ""],
                     ["0.1", "75.00 ± 7.07 [11.47, 138.53] (n=2)", "55.00 ± 7.07 [-8.53, 118.53] (n=2)",
                      "tied: kd, labels"],
                     ["0.5", "85.00 ± 1.41 [72.29, 97.71] (n=2)", "80.00 (n=1)", "tied: kd, labels (n=1)"]]


def per_seed(accuracies: dict) -> pd.DataFrame:
    """Runs of seeds 0, 1, ... per (setting, keep fraction) with the given accuracies, in order."""
    rows = [[setting, f, seed, acc, None, np.nan, np.nan, "cnn_w8", 6000]
            for (setting, f), values in accuracies.items() for seed, acc in enumerate(values)]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_a_setting_is_best_only_when_its_interval_overlaps_no_other():
    runs = per_seed({("a", 0.1): [0.80, 0.81, 0.82], ("b", 0.1): [0.70, 0.71, 0.72],
                        ("a", 0.5): [0.80, 0.81, 0.82], ("b", 0.5): [0.70, 0.71, 0.72], ("c", 0.5): [0.76, 0.80, 0.84]})
    table = study.study_table(runs, ["distillation"])
    # a: 81 ± 1, half-width t(0.975, 2) * 1 / sqrt(3) = 4.30265 / 1.73205 = 2.48414 -> [78.52, 83.48]
    # b: 71 ± 1 -> [68.52, 73.48], below a's; c: 80 ± 4, half-width 9.93656 -> [70.06, 89.94], overlaps a's
    # and b's, but only the top's overlaps count: at f = 0.5 a and c are tied, b is neither
    assert table[["distillation", "keep_fraction", "verdict"]].values.tolist() == [
        ["a", 0.1, "best"], ["a", 0.5, "tied"], ["b", 0.1, ""], ["b", 0.5, ""], ["c", 0.5, "tied"]]
    assert table["ci_low"].tolist() == pytest.approx([78.51586, 78.51586, 68.51586, 68.51586, 70.06344], abs=1e-4)
    lines = study.markdown(table, ["distillation"], "t").splitlines()
    assert lines[4] == "| 0.1 | **81.00 ± 1.00 [78.52, 83.48] (n=3)** | 71.00 ± 1.00 [68.52, 73.48] (n=3) |  | a |"
    assert lines[5] == ("| 0.5 | 81.00 ± 1.00 [78.52, 83.48] (n=3) | 71.00 ± 1.00 [68.52, 73.48] (n=3) "
                        "| 80.00 ± 4.00 [70.06, 89.94] (n=3) | tied: a, c |")


def test_settings_with_equal_accuracies_are_tied_and_none_is_bold():
    # as when every student of a run sits at chance: 18 settings at 8 % on both seeds, zero-width intervals
    names = [f"s{i:02d}" for i in range(18)]
    runs = per_seed({(name, 0.1): [0.08, 0.08] for name in names})
    table = study.study_table(runs, ["distillation"])
    assert table["verdict"].tolist() == ["tied"] * 18
    text = study.markdown(table, ["distillation"], "t")
    assert "**" not in text
    assert text.splitlines()[4].endswith("| all 18 tied |")


def test_with_one_seed_no_setting_is_best():
    runs = per_seed({("a", 0.1): [0.90], ("b", 0.1): [0.50]})
    table = study.study_table(runs, ["distillation"])
    assert table["verdict"].tolist() == ["tied", "tied"]
    assert study.markdown(table, ["distillation"], "t").splitlines()[4] == (
        "| 0.1 | 90.00 (n=1) | 50.00 (n=1) | tied: a (n=1), b (n=1) |")


def test_what_the_study_compares_and_its_title_default_from_the_report_section():
    assert study.compared({}) == ["scorer", "selector", "distillation"]
    assert study.compared({"compare": ["distillation"]}) == ["distillation"]
    assert study.title({}, "exp") == "exp: final test accuracy by scorer, selector, distillation"
    assert study.title({"title": "T"}, "exp") == "T"


def runs(rows):
    columns = ["distillation", "teacher", "infobatch_ratio", "scorer", "selector", "keep_fraction", "final_test_acc"]
    return pd.DataFrame(rows, columns=columns)


def test_kd_gain_is_each_teacher_setting_minus_labels_only_in_points():
    summary = runs([
        ("labels", None, np.nan, "el2n", "hardest", 0.1, 0.50), ("labels", None, np.nan, "el2n", "hardest", 0.1, 0.60),
        ("kd", "t", np.nan, "el2n", "hardest", 0.1, 0.70), ("kd", "t", np.nan, "el2n", "hardest", 0.1, 0.80),
        ("labels", None, np.nan, "el2n", "hardest", 0.5, 0.80), ("kd", "t", np.nan, "el2n", "hardest", 0.5, 0.85),
        ("kd_ib", "t", 0.5, "el2n", "hardest", 0.1, 0.50), ("kd_ib", "t", 0.5, "el2n", "hardest", 0.5, 0.90),
        # labels only with InfoBatch is not the baseline
        ("labels_ib", None, 0.5, "el2n", "hardest", 0.1, 0.99), ("labels_ib", None, 0.5, "el2n", "hardest", 0.5, 0.99),
    ])
    gains = study.kd_gain(summary)
    assert list(gains) == ["kd minus labels", "kd_ib minus labels"]
    # kd: (75 - 55, 85 - 80); kd_ib: (50 - 55, 90 - 80)
    assert gains["kd minus labels"].loc[("el2n", "hardest")].tolist() == pytest.approx([20.0, 5.0])
    assert gains["kd_ib minus labels"].loc[("el2n", "hardest")].tolist() == pytest.approx([-5.0, 10.0])
    assert gains["kd minus labels"].columns.tolist() == [0.1, 0.5]


def test_kd_gain_is_empty_without_a_labels_only_setting():
    assert study.kd_gain(runs([("kd", "t", np.nan, "el2n", "hardest", 0.1, 0.7)])) == {}


def test_the_study_reports_the_papers_number_with_the_final_accuracy_beside_it():
    runs = summary().assign(best_test_acc=lambda t: t["final_test_acc"] + 0.01)
    table = study.study_table(runs, ["distillation"], "best_test_acc")
    final = study.study_table(runs, ["distillation"])
    assert table["mean"].tolist() == pytest.approx((final["mean"] + 1).tolist())
    assert table["final_mean"].tolist() == pytest.approx(final["mean"].tolist())
    assert table["final_std"].tolist() == pytest.approx(final["std"].tolist(), nan_ok=True)
    text = study.markdown(table, ["distillation"], "t", "best_test_acc")
    row = final.iloc[0]
    assert f"{row['mean'] + 1:.2f}" in text and f"(n=2), final {row['mean']:.2f}" in text
    assert "Best test accuracy over the evaluated epochs (chosen on the test set" in text
    page = study.html(table, ["distillation"], "t", "best_test_acc")
    assert "after 'final': the mean final-epoch test accuracy" in page
    assert study.metric({}) == "final_test_acc" and study.metric({"metric": "test_acc_at_best_val"}) == "test_acc_at_best_val"
