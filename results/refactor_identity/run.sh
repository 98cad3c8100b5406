#!/usr/bin/env bash
# usage: run.sh SRC_TREE OUT_DIR  -- the bit-identity runs of issue 17, on the code in SRC_TREE
# (paths as on the machine that ran them: /work/main/.venv, /work/shared/data, /work/identity/slice.yaml)
set -euo pipefail
tree=$1; out=$2
export PYTHONPATH=$tree/src OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
export SEQLAB_DATA_DIR=/work/shared/data
PY=/work/main/.venv/bin/python
cd $tree
rm -rf $out; mkdir -p $out
$PY scripts/transfer_gap.py --config /work/identity/slice.yaml --output_dir $out/slice --jobs 1 > $out/slice.log 2>&1
$PY scripts/pretrain.py --config configs/pretrain/recurrent-tiny.yaml --tokenizer_path $out/slice/tokenizer \
   --max_train_tokens 300000 --max_corpus_tokens 500000 --save_steps 40 --eval_steps 40 --output_dir $out/pretrain > $out/pretrain.log 2>&1
$PY scripts/finetune.py --config configs/finetune/sst2-tiny-ulmfit.yaml --model_name_or_path $out/pretrain \
   --num_train_examples 300 --output_dir $out/ulmfit > $out/ulmfit.log 2>&1
echo done > $out/DONE
