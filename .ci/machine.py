"""Print what a test run depends on, so a red run can be traced to its machine: the CPU (model,
vendor, vector extensions, cores), the torch build and its GEMM libraries, and whether
rnnkit's C++ time loops are in use (RNNKIT_NATIVE, and whether they build here)."""

import os
import platform

import torch

from rnnkit.bptt import native


def cpu() -> str:
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    flags = set(info.get("flags", "").split())
    isa = [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if x in flags]
    vendor, model = info.get("vendor_id", "?"), info.get("model name", "?")
    return f"{model} ({vendor}; {' '.join(isa) or 'no avx2'}; {os.cpu_count()} cores)"


def main() -> None:
    print(f"cpu:   {cpu()}")
    print(
        f"torch: {torch.__version__} (cuda {torch.version.cuda or 'none'}; "
        f"mkl {torch.backends.mkl.is_available()}, mkldnn {torch.backends.mkldnn.is_available()};"
        f" {torch.get_num_threads()} threads)"
    )
    if not native.enabled():
        loops = "off (RNNKIT_NATIVE=0): the Python time loops"
    else:
        loops = "in use" if native.load() is not None else "unavailable: the Python time loops"
    print(f"rnnkit C++ time loops: {loops}")


if __name__ == "__main__":
    main()
