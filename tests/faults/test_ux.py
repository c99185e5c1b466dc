"""The command line as a user meets it: the progress bar and the log lines (in a real
terminal, a pty), the time left, the permissions of written files, the warm-up, the stop
reason, a resumed run's first line, no wait for the C++ build where it is not needed, the
message when it cannot be built, and messages that name flags."""

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from clirun import assert_one_error_line, rnnkit

from rnnkit.classify.labelled import read_labelled
from rnnkit.data.files import write_atomically
from rnnkit.train import checkpoint
from rnnkit.train.config import TrainConfig
from rnnkit.train.progress import time_left

FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"
SRC = Path(__file__).parent.parent.parent / "src"
TINY = ["--hidden", "8", "--layers", "1", "--bptt", "8", "--batch", "2"]


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 30, encoding="utf-8")
    return path


def env(**extra) -> dict:
    """This process's environment, rnnkit importable from the source tree."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_in_terminal(argv: list, timeout: float = 120) -> tuple[int, str]:
    """`python -m rnnkit ARGV` with stdout and stderr a 120-column terminal: (status, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    argv = [sys.executable, "-m", "rnnkit", *map(str, argv)]
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env())
    os.close(slave)
    chunks, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        if select.select([master], [], [], 0.5)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(master)
    return process.returncode, b"".join(chunks).decode("utf-8", "replace")


# ---- (a), (b) the progress bar --------------------------------------------------------------


def test_log_lines_do_not_collide_with_the_progress_bar(text, tmp_path):
    budget = ["--max-steps", 100_000, "--max-time", "1s", "--eval-every", 5]
    argv = ["textgen", "train", "--data", text, *TINY, *budget, "--out", tmp_path / "run"]
    code, output = run_in_terminal(argv)
    assert code == 0, output
    assert "step/s" in output  # the bar showed
    segments = re.split(r"[\r\n]+", output)
    logged = [s for s in segments if "valid/loss" in s]
    assert logged and all(s.startswith("step ") for s in logged), logged  # own line each
    assert "left=" in output and "left=-" not in output


def test_the_time_left_is_never_negative():
    assert time_left(10.0, 3.2) == "7s"
    assert time_left(10.0, 10.4) == "0s"
    assert time_left(10.0, 12.0) == "0s"


# ---- (c) permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomically_written_files_follow_the_umask(tmp_path, umask, mode):
    before = os.umask(umask)
    try:
        write_atomically(tmp_path / "out.txt", "hello\n")
        texts = tmp_path / "texts.txt"
        texts.write_text("a fine film\nawful\n")
        code, _, err = rnnkit("classify", "predict", FIXTURES / "classify", "--input", texts,
                              "--output", tmp_path / "labels.csv")  # fmt: skip
        assert code == 0, err
    finally:
        os.umask(before)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "labels.csv").stat().st_mode & 0o777 == mode


# ---- (d) warm-up ----------------------------------------------------------------------------


def test_the_default_warm_up_scales_with_the_run(text, tmp_path):
    assert TrainConfig(max_steps=84).warmup() == 8  # 3 epochs of 1,800 reviews, batch 64
    assert TrainConfig(max_steps=5000).warmup() == 100
    assert TrainConfig(max_time=60).warmup() == 100
    assert TrainConfig(max_steps=84, warmup_steps=0).warmup() == 0
    code, _, err = rnnkit("textgen", "train", "--data", text, *TINY, "--max-steps", 30,
                          "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    assert checkpoint.load(tmp_path / "run" / "last").config["train"]["warmup_steps"] == 3


@pytest.mark.parametrize("task", ["textgen", "classify", "forecast", "translate", "speech"])
def test_train_help_states_the_warm_up(task):
    code, out, _ = rnnkit(task, "train", "--help")
    assert code == 0
    assert "--warmup-steps" in out
    assert "10% of the run's steps, at most 100" in " ".join(out.split())


# ---- (e) stop reason ------------------------------------------------------------------------


def test_a_run_by_epochs_stops_for_epochs(tmp_path):
    rows = ["text,label"] + [f"{w} film {i},{lab}" for i in range(20)
                             for w, lab in (("great", "pos"), ("awful", "neg"))]  # fmt: skip
    data = tmp_path / "reviews.csv"
    data.write_text("\n".join(rows) + "\n")
    argv = ["classify", "train", "--train", data, "--embed", 8, "--hidden", 8, "--batch", 8,
            "--min-freq", 1, "--epochs", 2]  # fmt: skip
    code, out, err = rnnkit(*argv, "--json", "--out", tmp_path / "a")
    assert code == 0, err
    assert json.loads(out)["stop_reason"] == "epochs"
    code, out, err = rnnkit(*argv, "--out", tmp_path / "b")
    assert code == 0, err
    assert "(2.00 epochs, epochs)" in out.splitlines()[0]
    assert "max_steps" not in out + err


# ---- (f) resume -----------------------------------------------------------------------------


def test_a_resumed_run_says_from_which_step(text, tmp_path):
    out = tmp_path / "run"
    code, _, err = rnnkit("textgen", "train", "--data", text, *TINY, "--max-steps", 4, "--out", out)
    assert code == 0, err
    code, _, err = rnnkit("textgen", "train", "--data", text, "--out", out, "--resume",
                          "--max-steps", 6)  # fmt: skip
    assert code == 0, err
    lines = [line for line in err.splitlines() if "resum" in line]
    assert len(lines) == 1 and "from step 4" in lines[0], err


# ---- (g) the C++ build ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, printed",
    [
        (["demo", "--seconds", "0"], " 3   3.00000   0.95225   0.58090"),
        (["classify", "predict", FIXTURES / "classify", "a fine film"], "\t"),
    ],
)
def test_small_work_does_not_wait_for_the_build(tmp_path, argv, printed):
    build = tmp_path / "extensions"  # empty: any use of the C++ loops would start a build
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit", *map(str, argv)],
        capture_output=True, text=True, timeout=120, env=env(TORCH_EXTENSIONS_DIR=str(build)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert printed in result.stdout
    assert "compiling" not in result.stderr  # "rnnkit: compiling its C++ time loops"
    assert not list(build.rglob("*.so"))
    assert time.monotonic() - started < 25  # a build takes about 30 s


NO_NINJA = """
import sys
from torch.utils import cpp_extension

def no_ninja():
    raise RuntimeError("Ninja is required to load C++ extensions (pip install ninja to get it)")

cpp_extension.verify_ninja_availability = no_ninja
from rnnkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_ninja_one_line_says_how_to_get_the_fast_loops(text, tmp_path):
    """Training builds the C++ loops (inference on small inputs does not even try)."""
    argv = ["textgen", "train", "--data", text, *TINY, "--max-steps", 2, "--out", tmp_path / "r"]
    result = subprocess.run(
        [sys.executable, "-c", NO_NINJA, *map(str, argv)],
        capture_output=True, text=True, timeout=120,  # the loops on, whatever the suite's
        env=env(TORCH_EXTENSIONS_DIR=str(tmp_path / "extensions"), RNNKIT_NATIVE="1"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fallback = [line for line in result.stderr.splitlines() if "time loops" in line]
    assert len(fallback) == 1, result.stderr
    assert "Python time loops" in fallback[0]
    assert "pip install 'rnnkit[native]'" in fallback[0]
    assert "Warning" not in result.stderr and "compiling" not in result.stderr


# ---- (h) messages name flags ----------------------------------------------------------------


def test_messages_name_flags_on_the_command_line_and_arguments_in_python(tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\ngreat,pos\n,neg\nawful,neg\n")
    code, _, err = rnnkit("classify", "train", "--train", data, "--on-missing", "error",
                          "--epochs", 1, "--out", tmp_path / "run")  # fmt: skip
    assert_one_error_line(code, err, "--on-missing skip")
    assert "on_missing=" not in err
    with pytest.raises(ValueError, match="on_missing='skip'"):
        read_labelled(data, on_missing="error")  # the library names its argument
    code, _, err = rnnkit("classify", "train", "--train", data, "--epochs", 1,
                          "--max-steps", 3, "--out", tmp_path / "run")  # fmt: skip
    assert_one_error_line(code, err, "give --epochs or --max-steps, not both")


def test_no_cli_message_names_a_python_argument():
    """The messages of the code the command line runs (the tasks, the run machinery and the
    data readers; not the layers, whose callers are Python), as written in the source."""
    offenders = []
    packages = ("classify", "forecast", "speech", "textgen", "translate", "lab", "train", "data")
    for path in sorted(p for name in packages for p in (SRC / "rnnkit" / name).rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"[\"'][^\"']*pass [a-z_]+=", line) and "spelled(" not in line:
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
