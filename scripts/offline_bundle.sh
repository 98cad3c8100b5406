#!/usr/bin/env bash
# Pack what a GPU machine without internet needs to run seqlab's benchmarks and experiments: the wheels
# that a typical PyTorch image lacks (datasets, evaluate and their small dependencies, at the versions
# installed here) and the data folders the run reads. The machine then needs only:
#     source BUNDLE/activate.sh      # from the repository root: wheels into /tmp/seqlab-site, SEQLAB_DATA_DIR
#
# usage: scripts/offline_bundle.sh BUNDLE_DIR [DATA_FOLDER ...]
#   DATA_FOLDER: folders of $SEQLAB_DATA_DIR (default ../shared/data) to copy, e.g. pretrain sst2_sentence
#                (default: pretrain sst2_sentence tinyshakespeare, enough for `configs/experiments/small.yaml`
#                and the train/generate benchmarks; add imdb for the data benchmark)
# env: PYTHON_VERSION (default 3.12), WITH_PYARROW=1 to add pyarrow (about 45 MB) when the target's is < 24
set -euo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
bundle=${1%/}  # a trailing slash would put the partial folder inside the bundle
shift
data_dir=${SEQLAB_DATA_DIR:-../shared/data}
folders=("$@")
[[ ${#folders[@]} -gt 0 ]] || folders=(pretrain sst2_sentence tinyshakespeare)
python=${PYTHON:-python3}

for folder in "${folders[@]}"; do
    [[ -d "$data_dir/$folder" ]] || { echo "error: no data folder $data_dir/$folder (set SEQLAB_DATA_DIR)" >&2; exit 1; }
done

version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
packages=(datasets evaluate dill multiprocess fsspec)
[[ "${WITH_PYARROW:-0}" == 1 ]] && packages+=(pyarrow)

rm -rf "$bundle.partial"
mkdir -p "$bundle.partial/wheels" "$bundle.partial/data"
pins=()
for name in "${packages[@]}"; do pins+=("$name==$(version "$name")"); done
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version "${PYTHON_VERSION:-3.12}" \
    --implementation cp "${platforms[@]}" -d "$bundle.partial/wheels" "${pins[@]}"
for folder in "${folders[@]}"; do
    cp -r "$data_dir/$folder" "$bundle.partial/data/"
done

cat > "$bundle.partial/activate.sh" <<'EOF'
# source this file from the repository root: installs the bundled wheels next to the image's packages, puts
# ./src on PYTHONPATH and points seqlab at the bundled data
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/seqlab-site \
    "$here"/wheels/*.whl || return 1
export PYTHONPATH="/tmp/seqlab-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export SEQLAB_DATA_DIR="$here/data" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -c "import datasets, evaluate, seqlab; print('seqlab bundle ready: datasets', datasets.__version__)"
EOF

# only a complete bundle gets the final name
rm -rf "$bundle"
mv "$bundle.partial" "$bundle"
echo "wrote $bundle ($(du -sh "$bundle" | cut -f1)): ${pins[*]}; data: ${folders[*]}"
