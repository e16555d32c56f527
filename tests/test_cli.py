"""The ``anomaly-fast`` command line as a user meets it: exit codes, help
and defaults of every option, ``--version``, ``python -m anomaly_fast``,
the benchmark suites and their deprecated names, missing paths, quiet broken
pipes, ``score --dropna`` and ``--model-version``."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import anomaly_fast
from anomaly_fast import cli
from anomaly_fast.bench import SUITES
from anomaly_fast.pipeline.cli import fit_main, score_main

ROOT = Path(__file__).resolve().parents[1]

# (argv that reaches a parser, owner when another engineer's file defines it)
PARSERS = {
    "bench": (["bench"], None),
    **{f"bench {suite}": (["bench", suite], None) for suite in SUITES if suite != "forest"},
    "fit": (["fit"], None),
    "score": (["score"], None),
    "stream": (["stream"], None),
}
# parsers defined in files owned by other engineers, not yet converted to
# help-with-defaults (the lead applies the change; see the report of task E)


class _Parsed(Exception):
    pass


def parser_of(argv, monkeypatch):
    """The ArgumentParser that ``anomaly-fast ARGV`` builds (caught when it
    starts parsing)."""
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed):
        cli.main(argv)
    return seen["parser"]


def run_module(*args, stdin=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "anomaly_fast", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def registry(tmp_path, rng):
    df = pd.DataFrame(rng.normal(size=(500, 3)), columns=["a", "b", "c"])
    df["entity_id"] = [f"h{i % 5}" for i in range(len(df))]
    df.to_csv(tmp_path / "train.csv", index=False)
    assert fit_main([str(tmp_path / "train.csv"), "-o", str(tmp_path / "models"), "--n-estimators", "20"]) == 0
    return tmp_path / "models"


# -- the top-level command ----------------------------------------------------------------


def test_bare_command_prints_the_usage_on_stderr_and_exits_2(capsys):
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: anomaly-fast" in captured.err and "bench" in captured.err


def test_help_lists_every_command_and_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_version_prints_the_package_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"anomaly-fast {anomaly_fast.__version__}"


def test_unknown_command_exits_2(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command_line():
    done = run_module("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"anomaly-fast {anomaly_fast.__version__}"
    bare = run_module()
    assert bare.returncode == 2 and "usage: anomaly-fast" in bare.stderr


# -- help and defaults of every option ---------------------------------------------------


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_option_has_help_that_shows_its_default(command, monkeypatch):
    parser = parser_of(PARSERS[command][0], monkeypatch)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, f"{command}: {action.dest} has no help"
        if action.option_strings:
            shown = formatter._get_help_string(action)
            assert "default" in shown.lower(), f"{command}: {action.option_strings} does not show its default"


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_help_text_is_plain_text_not_restructuredtext(command, monkeypatch):
    text = parser_of(PARSERS[command][0], monkeypatch).format_help()
    for markup in ("``", ":class:", ":func:", ":mod:", "::\n"):
        assert markup not in text, f"{command} --help shows {markup!r}"


def test_bench_help_lists_the_suites(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: anomaly-fast bench [SUITE]" in out
    for suite in SUITES:
        assert suite in out


# -- the benchmark suites ---------------------------------------------------------------------


def test_bench_runs_the_forest_suite_by_default_and_names_the_others(monkeypatch):
    assert parser_of(["bench"], monkeypatch).prog == "anomaly-fast bench"
    for suite in SUITES:
        if suite != "forest":
            assert parser_of(["bench", suite], monkeypatch).prog.startswith("anomaly-fast")


def test_bench_rejects_an_unknown_suite(capsys):
    assert cli.main(["bench", "nope"]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("old, new", sorted(cli.DEPRECATED.items()))
def test_old_command_names_still_run_their_suite_with_a_deprecation_notice(old, new, monkeypatch, capsys):
    suite = new.split()[1]
    assert cli.COMMANDS[old][0] == SUITES[suite][0]
    parser_of([old], monkeypatch)
    assert f"'{old}' is deprecated" in capsys.readouterr().err and f"anomaly-fast {new}" in cli._usage()


def test_forest_suite_on_synthetic_data_says_so_and_writes_its_results_folder(tmp_path, monkeypatch, capsys):
    from anomaly_fast.bench import forest

    full = forest.synthetic
    monkeypatch.setattr(forest, "synthetic", lambda name, n, d, seed=0: full(name, 3000, d, seed))
    out = tmp_path / "results" / "bench.json"
    assert cli.main(["bench", "--repeat", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no --data-dir: running on built-in synthetic data" in text
    assert "n_jobs=-1" in text and "speed-up" in text
    report = json.loads(out.read_text())
    assert [r["dataset"] for r in report["speed"]] == ["synthetic_500k_x3", "synthetic_250k_x10", "synthetic_50k_x9"]


def test_results_go_to_a_folder_that_git_ignores(monkeypatch):
    out = parser_of(["bench"], monkeypatch)._option_string_actions["--out"].default
    folder = Path(out).parts[0]
    assert folder == "results"
    assert f"{folder}/" in (ROOT / ".gitignore").read_text().splitlines()
    assert f"`{out}`" in (ROOT / "README.md").read_text()


def test_nab_suite_on_synthetic_data_says_so(tmp_path, capsys):
    assert cli.main(["bench", "nab", "--methods", "textbook", "--series", "spike"]) == 0
    assert "no --data-dir: running on built-in synthetic hourly series" in capsys.readouterr().out


# -- missing paths ------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ["forest", "evaluate", "nab", "streaming"])
def test_a_missing_data_folder_is_reported_as_such(suite, tmp_path):
    missing = tmp_path / "not-here"
    with pytest.raises(SystemExit, match=f"no such folder: {missing}"):
        cli.main(["bench", suite, "--data-dir", str(missing)])


def test_score_reports_a_missing_model_folder(tmp_path, capsys):
    (tmp_path / "x.csv").write_text("a\n1\n")
    assert cli.main(["score", str(tmp_path / "no-models"), str(tmp_path / "x.csv")]) == 2
    assert "no such folder:" in capsys.readouterr().err


# -- score ------------------------------------------------------------------------------------


def test_score_dropna_skips_rows_with_missing_values_and_keeps_their_positions(registry, tmp_path, capsys):
    df = pd.read_csv(tmp_path / "train.csv").head(20)
    df.loc[[3, 7], "b"] = np.nan
    df.to_csv(tmp_path / "holes.csv", index=False)
    assert score_main([str(registry), str(tmp_path / "holes.csv")]) == 2
    assert "pass --dropna" in capsys.readouterr().err
    assert score_main([str(registry), str(tmp_path / "holes.csv"), "--dropna", "-o", str(tmp_path / "s.csv")]) == 0
    assert "skipped 2 rows" in capsys.readouterr().err
    scores = pd.read_csv(tmp_path / "s.csv")
    assert list(scores.columns) == ["row", "entity_id", "anomaly_score", "is_outlier"]
    assert scores["row"].tolist() == [i for i in range(20) if i not in (3, 7)]
    assert scores["entity_id"].tolist() == df["entity_id"].drop([3, 7]).tolist()


def test_score_model_version_option_and_its_deprecated_alias(registry, tmp_path, capsys):
    from anomaly_fast.pipeline.registry import ModelRegistry

    version = ModelRegistry(registry).list_versions()[-1]["version"]
    data = str(tmp_path / "train.csv")
    assert score_main([str(registry), data, "--model-version", version, "-o", str(tmp_path / "a.csv")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert score_main([str(registry), data, "--version", version, "-o", str(tmp_path / "b.csv")]) == 0
    assert "--version is deprecated" in capsys.readouterr().err
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert score_main([str(registry), data, "--model-version", "0" * 12]) == 2


def test_score_of_a_large_file_is_chunked_without_changing_the_scores(registry, rng):
    from anomaly_fast.pipeline.cli import _score_rows
    from anomaly_fast.pipeline.registry import ModelRegistry

    model = ModelRegistry(registry).load()
    X = rng.normal(size=(1000, 3))
    scores, flags = _score_rows(model, X, chunk=128)  # X: the model's columns in order
    named = pd.DataFrame(X, columns=model.feature_names_in_)
    np.testing.assert_array_equal(scores, model.anomaly_score(named))
    np.testing.assert_array_equal(flags, (model.predict(named) == -1).astype(int))


def test_score_into_a_closed_pipe_exits_quietly(registry, tmp_path, rng):
    big = pd.DataFrame(rng.normal(size=(40_000, 3)), columns=["a", "b", "c"])
    big.to_csv(tmp_path / "big.csv", index=False)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomaly_fast", "score", str(registry), str(tmp_path / "big.csv")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        header = proc.stdout.readline()  # like `| head -1`
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    assert header.startswith(b"anomaly_score")
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == cli.EXIT_BROKEN_PIPE
