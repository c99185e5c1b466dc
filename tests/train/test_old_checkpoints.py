"""Checkpoints written by an earlier rnnkit still load and still give the same answers.

tests/fixtures/checkpoints holds tiny checkpoints of every task that the code at commit e61d60f
(before the package layout of issue 18) wrote, with the inputs of its inference verbs, and
expected.json: what each verb printed then (its README says how they were made). Each test runs
the verb on a copy of the fixtures in tmp_path, so nothing can write next to the fixtures.
"""

import json
import math
import shutil
from pathlib import Path

import pytest
from clirun import rnnkit, snapshot

from rnnkit.train import checkpoint

FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
CASES = {case["name"]: case for case in EXPECTED["cases"]}
# Floats from float32 computations: other CPUs and BLAS builds round differently.
REL, ABS = 1e-4, 1e-6
NEEDS = {"speech": ("soundfile", "librosa")}


@pytest.fixture
def fixtures(tmp_path, monkeypatch):
    """A copy of the fixtures folder, made the working directory (the verbs print its paths)."""
    work = tmp_path / "checkpoints"
    shutil.copytree(FIXTURES, work)
    monkeypatch.chdir(work)
    return work


def assert_close(got, want, where="output"):
    """`got` equals `want` but for floats, which may differ by a few float32 roundings."""
    if isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
        assert math.isclose(got, want, rel_tol=REL, abs_tol=ABS), f"{where}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: {got} != {want}"
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{i}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED["checkpoints"]))
def test_checkpoint_load_reads_old_checkpoint(name):
    want = EXPECTED["checkpoints"][name]
    ckpt = checkpoint.load(FIXTURES / name)
    assert ckpt.step == want["step"]
    assert ckpt.config["task"] == want["task"] == name.split("_")[0]
    assert ckpt.model_state and ckpt.version == 1
    if "optimizer.safetensors" in want["files"]:  # a last/ checkpoint, to resume from
        assert ckpt.optimizer_state["state"] and ckpt.optimizer_state["param_groups"]
        assert ckpt.rng_states
    else:
        assert ckpt.optimizer_state is None


@pytest.mark.parametrize("name", sorted(CASES))
def test_inference_verb_prints_what_old_code_printed(name, fixtures):
    case = CASES[name]
    for module in NEEDS.get(case["argv"][0], ()):
        pytest.importorskip(module)
    before = snapshot(fixtures)
    code, out, err = rnnkit(*case["argv"])
    assert code == 0, err
    if case["compare"] == "exact":
        assert out == case["stdout"]
    else:
        got, want = out.splitlines(), case["stdout"].splitlines()
        assert len(got) == len(want), out
        for g, w in zip(got, want):
            assert_close(json.loads(g), json.loads(w), name)
    assert snapshot(fixtures) == before  # the verbs only read
