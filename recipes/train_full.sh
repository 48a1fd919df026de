#!/usr/bin/env bash
# One command from a fetched corpus repository to a trained model (issue 28):
#
#   recipes/train_full.sh RECIPE GIT_DIR DATA_DIR [biosig train options ...]
#
#   RECIPE    ecg_af_cinc2017 | pcg_murmur_circor2022 | cough_covid_xvector | eeg_seizure_bonn
#   GIT_DIR   the corpus's public repository, fetched (`get_corpus.py --list` names it);
#             "-" when DATA_DIR already holds the development portion
#   DATA_DIR  where the development portion is laid out (the reserved portion never is)
#
# Steps, each skipped when its output is already there (so a rerun resumes):
#   1. python $GET_CORPUS CORPUS GIT_DIR DATA_DIR (default ../shared/tools/get_corpus.py);
#   2. biosig manifest build CORPUS DATA_DIR --out DATA_DIR.jsonl (or $MANIFEST);
#   3. biosig train recipes/RECIPE/config.yaml --profile cpu on that manifest, run id
#      `full-cpu` under runs/ (set BIOSIG_PROFILE, BIOSIG_RUN_ID or OUTPUT_DIR to change),
#      with --resume: an interrupted run continues where it stopped.
# Then `biosig score model runs/RECIPE/full-cpu NEW_FOLDER --out OUT` writes predictions.csv
# and the challenge's answer files (CinC answers.txt, CirCor answers/<patient>.csv), with the
# decision rule the run tuned on validation.
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 3 ] || usage
recipe=$1 git_dir=$2 data_dir=${3%/}
shift 3
case $recipe in
  ecg_af_cinc2017) corpus=cinc2017 ;;
  pcg_murmur_circor2022) corpus=circor2022 ;;
  cough_covid_xvector) corpus=covid19_cough ;;
  eeg_seizure_bonn) corpus=bonn ;;
  *) echo "train_full.sh: RECIPE is '$recipe', expected one of ecg_af_cinc2017," \
          "pcg_murmur_circor2022, cough_covid_xvector, eeg_seizure_bonn" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python}
biosig=("$python" -m biosig)

if [ "$git_dir" != "-" ]; then
  get_corpus=${GET_CORPUS:-$here/../shared/tools/get_corpus.py}
  if [ ! -f "$get_corpus" ]; then
    echo "train_full.sh: $get_corpus not found (set GET_CORPUS to the corpus tool)" >&2
    exit 2
  fi
  "$python" "$get_corpus" "$corpus" "$git_dir" "$data_dir"
elif [ ! -d "$data_dir" ]; then
  echo "train_full.sh: DATA_DIR $data_dir does not exist and GIT_DIR is '-'" >&2
  exit 2
fi
manifest=${MANIFEST:-$data_dir.jsonl}
"${biosig[@]}" manifest build "$corpus" "$data_dir" --out "$manifest"
"${biosig[@]}" train "$here/recipes/$recipe/config.yaml" --profile "${BIOSIG_PROFILE:-cpu}" \
  --set "data.manifest=$manifest" --set "data.root=$data_dir" \
  --set "output_dir=${OUTPUT_DIR:-runs}" \
  --run-id "${BIOSIG_RUN_ID:-full-cpu}" --resume "$@"
