"""Tests for the `rnnkit` command line: the demo (worked example, then a short training run)
and error exits."""

import os
import subprocess
import sys

import pytest

from rnnkit import cli
from rnnkit.train.loop import NonFiniteError

EXPECTED_H = [0.53705, 0.85137, 0.95225]
EXPECTED_Y = [0.41482, 0.54055, 0.58090]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def parse_demo_rows(stdout: str) -> list[list[float]]:
    rows = []
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0].isdigit():
            rows.append([float(f) for f in fields])
    return rows


def assert_worked_example(stdout: str) -> None:
    rows = parse_demo_rows(stdout)
    assert [row[0] for row in rows] == [1, 2, 3]
    assert [row[1] for row in rows] == [1.0, 2.0, 3.0]
    assert [row[2] for row in rows] == pytest.approx(EXPECTED_H, abs=1e-5)
    assert [row[3] for row in rows] == pytest.approx(EXPECTED_Y, abs=1e-5)


@pytest.mark.parametrize("flag", [["--seconds", "0"], ["--no-train"]])
def test_demo_prints_worked_example(capsys, flag):
    assert cli.main(["demo", *flag]) == 0
    out = capsys.readouterr().out
    assert_worked_example(out)
    assert "Training" not in out


def test_demo_trains_then_samples():
    """The whole demo, training for 2 s instead of a minute."""
    result = run_cli("demo", "--seconds", "2")
    assert result.returncode == 0, result.stderr
    assert_worked_example(result.stdout)
    assert "validation loss" in result.stdout and "nats/char" in result.stdout
    sample = result.stdout.split("A sample")[1].split("\n", 2)[2]
    assert sample.startswith(cli.DEMO_PRIME)
    assert len(sample) == len(cli.DEMO_PRIME) + cli.DEMO_SAMPLE_LENGTH + 1


def test_unknown_command_exits_2_without_traceback():
    result = run_cli("nonsense")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("rnnkit ")


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad\nvalue"), TypeError("t"), FileNotFoundError("f"), NonFiniteError("nan")],
)
def test_command_error_is_one_line_exit_2(monkeypatch, capsys, exc):
    def boom(args):
        raise exc

    monkeypatch.setattr(cli, "demo_command", boom)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")


def test_keyboard_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "demo_command", interrupted)
    assert cli.main(["demo"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
