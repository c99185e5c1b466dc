"""Tests for `rnnkit translate train | run | eval`: a tiny word-for-word language learnt end to
end, run/eval round trips, the attention plot, and every bad input as one `error:` line with
exit status 2 (or a warning where the issue asks for one)."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from budget import SEED, margin
from clirun import assert_one_error_line, rnnkit, snapshot

from rnnkit.train import checkpoint

# a toy language pair: each source word has one translation, and the target reverses the order
LEXICON = dict(zip("ein zwei drei hund katze mann frau rot blau läuft".split(),
                   "one two three dog cat man woman red blue runs".split()))  # fmt: skip
TINY = ["--embed", "32", "--hidden", "64", "--batch", "32", "--min-freq", "1", "--dropout", "0"]


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = list(LEXICON)
    out = []
    for _ in range(n):
        src = rng.choices(words, k=rng.randint(2, 5))
        out.append((" ".join(src), " ".join(LEXICON[w] for w in reversed(src))))
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("toy")
    train, test = pairs(3000, 0), pairs(60, 1)
    train_src = [s for s, _ in train]
    train_src[7] = ""  # one empty line: skipped and counted
    return {
        "train.de": write(d / "train.de", train_src),
        "train.en": write(d / "train.en", [t for _, t in train]),
        "test.de": write(d / "test.de", [s for s, _ in test]),
        "test.en": write(d / "test.en", [t for _, t in test]),
        "test.tsv": write(d / "test.tsv", [f"{s}\t{t}" for s, t in test]),
        "dir": d,
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory, files) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "toy"
    code, stdout, err = rnnkit(
        "translate", "train", "--source", files["train.de"], "--target", files["train.en"],
        "--valid-source", files["test.tsv"], "--test-source", files["test.de"],
        "--test-target", files["test.en"], *TINY, "--max-steps", "400", "--lr", "0.01",
        "--attention", "luong", "--seed", SEED, "--json", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "1 pairs with an empty side were skipped" in err
    return out, json.loads(stdout)


def test_train_learns_the_toy_language_and_writes_a_self_contained_run(run):
    out, s = run
    assert s["counts"]["train"] == 2999 and s["counts"]["skipped"]["train"] == 1
    assert s["counts"]["valid"] == 60 and s["counts"]["test"] == 60
    assert margin("test bleu", s["test"]["bleu"], 90) >= 90 and s["test"]["beam"] == 5
    assert "tok:13a" in s["test"]["bleu_signature"]
    assert margin("valid bleu", s["valid_bleu_greedy"], 90) >= 90
    ckpt = checkpoint.load(out / "best")
    assert ckpt.config["task"] == "translate" and ckpt.config["model"]["attention"] == "luong"
    assert "hund" in ckpt.vocab["source"]["vocab"]["tokens"]
    assert "dog" in ckpt.vocab["target"]["vocab"]["tokens"]


def test_run_translates_texts_and_files(run, files, tmp_path):
    out, _ = run
    code, stdout, err = rnnkit("translate", "run", out, "ein rot hund", "zwei katze läuft")
    assert code == 0, err
    assert stdout.splitlines() == ["dog red one", "runs cat two"]
    code, stdout, _ = rnnkit("translate", "run", out, "--beam", "1", "drei frau", "--json")
    assert json.loads(stdout)["translation"] == "woman three"  # TEXT after an option is fine
    code, _, err = rnnkit("translate", "run", out, "drei frau", "--no-such-option")
    assert_one_error_line(code, err, "unrecognized arguments: --no-such-option")
    source = write(tmp_path / "in.de", ["mann blau", "", "frau läuft"])
    target = tmp_path / "out.en"
    code, stdout, err = rnnkit("translate", "run", out, "--input", source, "--output", target)
    assert code == 0, err
    assert target.read_text().splitlines() == ["blue man", "", "runs woman"]
    assert "1 empty lines left empty" in stdout
    code, _, err = rnnkit("translate", "run", out, "--input", source, "--output", target)
    assert_one_error_line(code, err, "exists; choose another --output or pass --force")


def test_eval_scores_bleu_and_chrf_and_beam_1_matches_greedy(run, files, tmp_path):
    out, _ = run
    results = {}
    for beam in ("1", "5"):
        code, stdout, err = rnnkit(
            "translate", "eval", out, "--source", files["test.de"], "--target",
            files["test.en"], "--beam", beam, "--json", "--output", tmp_path / f"hyp{beam}",
        )  # fmt: skip
        assert code == 0, err
        results[beam] = json.loads(stdout)
    assert results["5"]["bleu"] >= 90 and results["5"]["chrf"] >= 90
    assert results["1"]["sentences"] == 60 and results["1"]["beam"] == 1
    hyp = (tmp_path / "hyp1").read_text().splitlines()
    first = files["test.de"].read_text().splitlines()[:5]
    code, stdout, _ = rnnkit("translate", "run", out, *first, "--beam", "1")
    assert stdout.splitlines() == hyp[:5]
    code, stdout, err = rnnkit("translate", "eval", out, "--source", files["test.tsv"])
    assert code == 0, err
    assert "BLEU" in stdout and "chrF" in stdout and "over 60 sentences" in stdout


def test_run_plots_the_attention_of_one_sentence(run, tmp_path):
    out, _ = run
    png = tmp_path / "attention.png"
    code, stdout, err = rnnkit("translate", "run", out, "ein rot hund", "--plot", png)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    code, _, err = rnnkit("translate", "run", out, "a", "b", "--plot", png)
    assert_one_error_line(code, err, "--plot draws one translation")


def test_unknown_and_overlong_sentences_warn_and_still_translate(run):
    out, _ = run
    code, stdout, err = rnnkit("translate", "run", out, "ein zebra hund")
    assert code == 0, err
    assert "read as <unk>: zebra" in err and len(stdout.splitlines()) == 1
    long = " ".join(["hund"] * 150)  # above the run's --max-tokens (100)
    code, stdout, err = rnnkit("translate", "run", out, long, "--beam", "1")
    assert code == 0, err
    assert "1 sentences longer than 100 tokens were truncated" in err
    code, stdout, err = rnnkit("translate", "run", out, "ein rot hund", "--max-length", "2")
    assert code == 0, err
    assert stdout.split() == ["dog", "red"]  # cut at 2 tokens


def test_train_truncates_long_sentences_with_a_warning(files, tmp_path):
    code, _, err = rnnkit(
        "translate", "train", "--source", files["test.de"], "--target", files["test.en"],
        *TINY, "--max-tokens", "3", "--max-steps", "1", "--out", tmp_path / "short",
    )  # fmt: skip
    assert code == 0, err
    assert "longer than 3 tokens were truncated (--max-tokens)" in err


def test_bad_inputs_are_one_error_line(run, files, tmp_path):
    out, _ = run
    before = snapshot(out)
    short = write(tmp_path / "short.en", ["one", "two"])
    new = tmp_path / "new"
    code, _, err = rnnkit(
        "translate", "train", "--source", files["train.de"], "--target", short, "--out", new
    )
    assert_one_error_line(code, err, "has 3,000 lines")
    assert "short.en has 2" in err and not new.exists()
    code, _, err = rnnkit(
        "translate", "train", "--source", tmp_path / "missing.de", "--target", short,
        "--out", tmp_path / "x",
    )  # fmt: skip
    assert_one_error_line(code, err, "missing.de: no such file")
    code, _, err = rnnkit("translate", "train", "--source", files["train.de"], "--out", new)
    assert_one_error_line(code, err, "expected source<TAB>target")
    code, _, err = rnnkit(
        "translate", "train", "--source", files["train.de"], "--target", files["train.en"],
        "--out", out,
    )  # fmt: skip
    assert_one_error_line(code, err, "already holds a training run")
    code, _, err = rnnkit("translate", "run", out)
    assert_one_error_line(code, err, "nothing to translate")
    code, _, err = rnnkit("translate", "run", out, "--input", files["test.de"])
    assert_one_error_line(code, err, "--input and --output go together")
    code, _, err = rnnkit("translate", "run", tmp_path, "ein hund")
    assert_one_error_line(code, err)
    code, _, err = rnnkit("translate", "run", out, "ein hund", "--beam", "0")
    assert_one_error_line(code, err, "expected a positive integer")
    code, _, err = rnnkit("translate", "eval", out, "--source", files["test.de"], "--target", short)
    assert_one_error_line(code, err, "differ in length")
    assert snapshot(out) == before  # nothing was lost


def test_subword_tokenizer_trains_and_translates_with_its_own_spacing(files, tmp_path):
    out = tmp_path / "subword"
    code, stdout, err = rnnkit(
        "translate", "train", "--source", files["test.tsv"], "--tokenizer", "subword",
        "--subword-vocab", "40", *TINY, "--max-steps", "2", "--json", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    vocab = checkpoint.load(out / "last").vocab
    assert vocab["source"]["kind"] == "subword" and len(vocab["source"]["model"]) > 100
    code, stdout, err = rnnkit("translate", "run", out, "ein hund", "--beam", "2")
    assert code == 0, err
    assert len(stdout.splitlines()) == 1 and "▁" not in stdout


def test_torchrun_two_processes_train_a_usable_translator(files, tmp_path):
    """`torchrun --nproc-per-node 2 -m rnnkit translate train` (gloo, half of each batch per
    process): process 0 alone prints and saves, both processes' generators are checkpointed,
    and the run translates. (Not compared with one process step for step: the loss is a mean
    over each process's own target tokens, so the halves weigh in by sentence, not by token.)"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    command += ["2", "-m", "rnnkit", "translate", "train", "--source", str(files["train.de"])]
    command += ["--target", str(files["train.en"]), "--valid-source", str(files["test.tsv"])]
    command += [*TINY, "--max-steps", "80", "--lr", "0.01", "--seed", str(SEED)]
    command += ["--json", "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, done.stdout  # process 0 alone prints
    s = json.loads(lines[0])
    # from about 2.6 (uniform over the target words); 80 steps reach 0.4-0.6
    # on seeds 0-2 (40 left 1.86)
    assert s["step"] == 80 and margin("valid loss", s["best_valid_loss"], 2.0) < 2.0
    ckpt = checkpoint.load(out / "last")
    assert len(ckpt.rng_states) == 2
    code, stdout, err = rnnkit("translate", "run", out, "ein hund")
    assert code == 0 and len(stdout.splitlines()) == 1, err
