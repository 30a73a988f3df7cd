#!/usr/bin/env bash
# The wheels the GPU check needs that the GPU machine's image lacks or has too old, into .whl/
# (git-ignored; it travels to the GPU machine with `carry: [".whl"]`). The image has torch,
# transformers 5.17 (with huggingface_hub 1.x, tokenizers 0.23, typer, httpx), accelerate,
# safetensors, pandas, pyarrow, numpy, scipy, seaborn, jinja2, tqdm and PyYAML; not pydantic.
# We carry our pin of transformers (5.24.0: the project's cache API) with the newest
# huggingface_hub 1.x it accepts (>= 1.31), click for that hub, and pydantic with its parts
# (pydantic-core for x86_64 and aarch64: pip takes the one that fits). .whl/requirements.txt
# names them; gpu_check.py's docstring has the install line (--no-deps, into a folder put first
# on PYTHONPATH).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
rm -rf "$DEST" && mkdir -p "$DEST"
cat > "$DEST/requirements.txt" <<'REQ'
transformers==5.24.0
huggingface_hub==1.33.0
click==8.5.1
pydantic==2.14.4
pydantic-core==2.50.5
annotated-types==0.8.0
typing-inspection==0.4.5
typing-extensions==4.16.0
REQ
for arch in x86_64 aarch64; do
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" --platform any \
    -d "$DEST" -r "$DEST/requirements.txt" 2>&1 | grep -v "^WARNING: Location" || true
done
ls -l "$DEST"
test "$(ls "$DEST"/*.whl | wc -l)" -ge 9 || { echo "gpu_wheels: wheels missing" >&2; exit 1; }
du -cb "$DEST"/*.whl | tail -1 | awk '{printf "total %.1f MB\n", $1 / 1e6}'
