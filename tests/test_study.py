"""The study's tables from a hand-made summary: accuracy per compared setting and keep fraction
(mean ± std over seeds, in %), its Markdown and HTML, the defaults of what it compares and its
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
    assert table.columns.tolist() == ["distillation", "keep_fraction", "mean", "std", "seeds", *study.SETTING_COLUMNS]
    assert table[["distillation", "keep_fraction", "seeds"]].values.tolist() == [
        ["kd", 0.1, 2], ["kd", 0.5, 2], ["labels", 0.1, 2], ["labels", 0.5, 1]]
    # means of (70, 80), (84, 86), (50, 60), (80); sample std of two values a, b is |a - b| / sqrt(2)
    assert table["mean"].tolist() == pytest.approx([75.0, 85.0, 55.0, 80.0])
    assert table["std"].iloc[:3].tolist() == pytest.approx([10 / 2**0.5, 2 / 2**0.5, 10 / 2**0.5])
    assert np.isnan(table["std"].iloc[3])  # one seed
    assert table["teacher"].tolist()[:2] == ["t4", "t4"] and table["teacher"].iloc[2:].isna().all()
    assert table["student_params"].tolist() == [6000] * 4


def test_markdown_marks_the_best_setting_of_each_keep_fraction():
    table = study.study_table(summary(), ["distillation"])
    assert study.markdown(table, ["distillation"], "my study") == "\n".join([
        "### my study",
        "",
        "| keep fraction | kd | labels | best |",
        "|---|---|---|---|",
        "| 0.1 | **75.00 ± 7.07 (n=2)** | 55.00 ± 7.07 (n=2) | kd |",
        "| 0.5 | **85.00 ± 1.41 (n=2)** | 80.00 (n=1) | kd |",
        "",
        "Final-epoch test accuracy (%), mean ± std over seeds (n = number of seeds).",
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
    assert cells == [["setting", "kd", "labels"], ["keep_fraction", "", ""],
                     ["0.1", "75.00 ± 7.07 (n=2)", "55.00 ± 7.07 (n=2)"], ["0.5", "85.00 ± 1.41 (n=2)", "80.00 (n=1)"]]


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
    assert f"{row['mean'] + 1:.2f}" in text and f"[{row['mean']:.2f}]" in text
    assert "Best test accuracy over the evaluated epochs (chosen on the test set" in text
    assert "in brackets: the final-epoch test accuracy" in study.html(table, ["distillation"], "t", "best_test_acc")
    assert study.metric({}) == "final_test_acc" and study.metric({"metric": "test_acc_at_best_val"}) == "test_acc_at_best_val"
