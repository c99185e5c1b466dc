"""Tests for train/options.py: a dataclass field declares its option once; the builder makes
the argparse option, the help shows the default, and only what was given is handed on."""

import argparse
from dataclasses import dataclass

import pytest
from clirun import rnnkit

from rnnkit.train.options import add_options, given, option, positive_int, resolved


@dataclass
class Toy:
    size: int = option(8, "how many", type=positive_int, metavar="N")
    path: str | None = option(None, "a file", flag="--data", metavar="FILE", shown="none")
    mode: str = option("a", "", choices=("a", "b"))
    tied: bool = option(False, "share weights", action="store_true", shown="")
    hidden_only: int = 3  # not an option


def parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="toy", exit_on_error=False)
    add_options(p, Toy, **kw)
    return p


def test_each_option_field_becomes_one_flag_with_its_default_in_the_help():
    text = " ".join(parser().format_help().split())
    assert "--size N how many (default: 8)" in text
    assert "--data FILE a file (default: none)" in text
    assert "--mode {a,b} (default: a)" in text
    assert "--tied share weights" in text and "(default: False)" not in text
    assert "hidden" not in text


def test_only_what_the_command_line_gave_is_handed_on():
    args = parser().parse_args(["--size", "5", "--tied"])
    assert given(args, Toy) == {"size": 5, "tied": True}
    assert given(parser().parse_args([]), Toy) == {}
    assert resolved(args, Toy) == {"size": 5, "path": None, "mode": "a", "tied": True}


def test_a_task_default_and_shown_text_replace_the_fields():
    text = " ".join(
        parser(defaults={"size": 16}, shown={"mode": "the first"}).format_help().split()
    )
    assert "(default: 16)" in text and "(default: the first)" in text


def test_a_bad_value_is_refused_by_the_type():
    with pytest.raises(argparse.ArgumentError, match="expected a positive integer, got '0'"):
        parser().parse_args(["--size", "0"])


def test_a_new_training_option_reaches_every_train_verb_from_one_declaration():
    # --clip is declared once, on TrainConfig.clip_norm; every task's train verb shows it
    for task in ("textgen", "classify", "forecast", "translate", "speech"):
        code, out, _ = rnnkit(task, "train", "--help")
        assert code == 0 and "--clip NORM" in out, task
