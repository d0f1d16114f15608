#!/usr/bin/env bash
# SciFact's judged train queries in 5 folds, every number through the real
# commands and the engine serve runs: for each fold, `train embed --beir`
# fits the embedding model on the corpus pairs and the other folds' judged
# queries, `train rank --judgments --cross-fit 4` fits LambdaMART on the
# other folds' judgments (dense scores from models that did not see the
# query), and `eval search --fold` scores the held-out fold lexical, dense,
# hybrid (RRF) and hybrid with the ranker. The pooled lines weigh each fold
# by its queries. No test label is read: the folder holds none.
#
#   scripts/scifact-folds.sh [work dir]      (make scifact; about 15 min on 2 cores)
#
# Knobs (environment): BEIR (../shared/data/beir-scifact), FOLDS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-var/scifact}
BEIR=${BEIR:-../shared/data/beir-scifact}
FOLDS=${FOLDS:-5}
qrels=$BEIR/qrels/train.tsv
bin=./bin/recsys
[ -s "$qrels" ] || { echo "no $qrels: the SciFact folder is missing" >&2; exit 1; }
mkdir -p "$dir"
export RECSYS_LOG_LEVEL=warn
results=$dir/results.tsv
printf 'fold\tsetup\tqueries\tndcg10\trecall100\tp50_us\tp99_us\n' >"$results"

# score FOLD SETUP ARGS...: one eval search of the fold, appended to results.
score() {
  local fold=$1 setup=$2
  shift 2
  "$bin" eval search --beir "$BEIR" --qrels "$qrels" --fold "$fold" --folds "$FOLDS" "$@" 2>/dev/null |
    awk -v f="$fold" -v s="$setup" '
      /^queries /{q=$2} /^nDCG@10 /{n=$2} /^Recall@100 /{r=$2}
      /^latency /{p50=$3; p99=$6}
      END{printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f, s, q, n, r, p50, p99}' >>"$results"
  tail -1 "$results"
}

for fold in $(seq 1 "$FOLDS"); do
  printf '\n== fold %s of %s\n' "$fold" "$FOLDS"
  model=$dir/embed-$fold.onnx ranker=$dir/ranker-$fold.onnx
  "$bin" train embed --beir "$BEIR" --qrels "$qrels" --fold "$fold" --folds "$FOLDS" --out "$model" | tail -1
  score "$fold" lexical --retrieval lexical
  score "$fold" dense --retrieval dense --model "$model"
  score "$fold" hybrid-rrf --retrieval hybrid --model "$model"
  "$bin" train rank --judgments "$qrels" --beir "$BEIR" --fold "$fold" --folds "$FOLDS" --model "$model" --cross-fit 4 \
    --out "$ranker" --no-promote --runs "$dir/runs" --rows "$dir/rows-$fold.csv" 2>/dev/null | grep -E '^(trained|test slice)'
  score "$fold" hybrid-ltr --retrieval hybrid --model "$model" --ranker "$ranker"
done

printf '\n== pooled over %s folds (each fold weighed by its queries)\n' "$FOLDS"
awk -F'\t' 'NR>1{q[$2]+=$3; n[$2]+=$3*$4; r[$2]+=$3*$5; if(!($2 in o)){o[$2]=++k; name[k]=$2}}
  END{printf "%-11s %7s %8s %10s\n", "setup", "queries", "nDCG@10", "Recall@100";
      for(i=1;i<=k;i++){s=name[i]; printf "%-11s %7d %8.4f %10.4f\n", s, q[s], n[s]/q[s], r[s]/q[s]}}' "$results"
