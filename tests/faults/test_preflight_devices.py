"""`--device` (issue 22, item 6): an unknown, unavailable or absent device is one `error:` line
naming the value and the devices there are, in every task verb that takes --device, before the
verb reads a file."""

import pytest
import torch
from clirun import assert_one_error_line, rnnkit

from rnnkit.train.devices import available, check_device

# every verb that takes --device, with the arguments it needs to parse (none of them read)
VERBS = [
    ["textgen", "train", "--out", "r"],
    ["textgen", "sample", "r"],
    ["textgen", "eval", "r", "--data", "t.txt"],
    ["textgen", "inspect", "r", "--text", "t.txt", "--out", "p.html"],
    ["classify", "train", "--train", "t.csv", "--out", "r"],
    ["classify", "predict", "r", "text"],
    ["classify", "eval", "r", "--data", "t.csv"],
    ["forecast", "train", "--out", "r"],
    ["forecast", "predict", "r"],
    ["forecast", "eval", "r"],
    ["translate", "train", "--source", "s.tsv", "--out", "r"],
    ["translate", "run", "r", "text"],
    ["translate", "eval", "r", "--source", "s.tsv"],
    ["speech", "train", "--manifest", "m.csv", "--out", "r"],
    ["speech", "transcribe", "r", "a.wav"],
    ["speech", "eval", "r", "--manifest", "m.csv"],
    ["lab", "adding"],
    ["lab", "copy"],
]
NO_CUDA = not torch.cuda.is_available()


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v[:2]))
def test_a_misspelt_device_is_one_error_line(verb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = rnnkit(*verb, "--device", "banana")
    assert_one_error_line(code, err, "--device 'banana' is not a device")
    assert f"available here: {available()}" in err and out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not NO_CUDA, reason="this torch has a CUDA device")
@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
@pytest.mark.parametrize("verb", VERBS[::3], ids=lambda v: " ".join(v[:2]))
def test_cuda_without_cuda_is_one_error_line(verb, device, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = rnnkit(*verb, "--device", device)
    assert_one_error_line(code, err, f"--device {device}: ")
    assert "available here: cpu" in err


def test_a_cuda_index_past_the_devices_names_how_many_there_are():
    count = torch.cuda.device_count()
    if not count:
        pytest.skip("needs a CUDA device")
    with pytest.raises(ValueError, match=f"cuda:{count}: this machine has {count} CUDA device"):
        check_device(f"cuda:{count}")
    assert check_device("cuda:0") == torch.device("cuda:0")


def test_the_devices_there_are_pass():
    assert check_device("cpu") == torch.device("cpu")
    for name in available().split(", "):
        check_device(name)
