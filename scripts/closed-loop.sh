#!/usr/bin/env bash
# One cycle of the closed loop on the synthetic world, end to end through the
# real commands: serve the untrained linear ranker, drive simulated users at
# it, train the tree ranker from the logged events, promote it through the
# gate, rebuild, reload, measure the next traffic, then roll back to the
# linear bundle and measure the same sessions again. The linear ranker goes
# second, so it also has the user histories the trained ranker's traffic
# added: the comparison leans, if anything, its way.
#
#   scripts/closed-loop.sh [work dir]      (make loop)
#
# Knobs (environment): ITEMS (10000), USERS (1000), TRAIN_SESSIONS (20000),
# EVAL_SESSIONS (5000), EXPLORE (0.05, engine.explore_rate), PORT (18080),
# ADMIN_PORT (18081), KAFKA_PORT (19092). Everything lives under the work dir (var/loop).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-var/loop}
ITEMS=${ITEMS:-10000} USERS=${USERS:-1000}
TRAIN_SESSIONS=${TRAIN_SESSIONS:-20000} EVAL_SESSIONS=${EVAL_SESSIONS:-5000}
EXPLORE=${EXPLORE:-0.05} PORT=${PORT:-18080} ADMIN_PORT=${ADMIN_PORT:-18081} KAFKA_PORT=${KAFKA_PORT:-19092}
bin=./bin/recsys
url=http://127.0.0.1:$PORT

rm -rf "$dir" && mkdir -p "$dir"
export RECSYS_BUNDLES_DIR=$dir/bundles RECSYS_BUNDLES_POLL_INTERVAL=0 \
  RECSYS_BUILD_CATALOG=$dir/world/catalog.jsonl RECSYS_BUILD_RANKER=$dir/models/ranker.onnx \
  RECSYS_KAFKA_SPOOL_DIR=$dir/spool RECSYS_EMBEDDED_KAFKA_DATA_DIR=$dir/kafka \
  RECSYS_EMBEDDED_KAFKA_ADDR=127.0.0.1:$KAFKA_PORT RECSYS_SERVER_ADDR=127.0.0.1:$PORT RECSYS_SERVER_ADMIN_ADDR=127.0.0.1:$ADMIN_PORT \
  RECSYS_ENGINE_EXPLORE_RATE=$EXPLORE RECSYS_LOG_LEVEL=warn

step() { printf '\n== %s\n' "$*"; }
current() { cat "$dir/bundles/CURRENT"; }
# serverFailed WHY: say why, with the end of the server's log.
serverFailed() {
  echo "$1; the end of its log:" >&2
  tail -20 "$dir/serve.log" >&2
  return 1
}
# serving BUNDLE: wait until search answers from that bundle.
serving() {
  for _ in $(seq 1 300); do
    if [ -n "${server:-}" ] && ! kill -0 "$server" 2>/dev/null; then serverFailed "server exited"; return; fi
    if curl -sf "$url/v1/search" -H 'Content-Type: application/json' -d '{"query":"red shoes","k":1}' 2>/dev/null |
      grep -q "\"bundle\":\"$1\""; then return 0; fi
    sleep 0.2
  done
  serverFailed "server did not serve bundle $1"
}
simulate() { # name seed sessions [simulate flags]
  $bin simulate --url "$url" --items "$ITEMS" --users "$USERS" --seed "$2" --sessions "$3" "${@:4}" --json >"$dir/$1.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%-22s CTR %.4f  NDCG@10(utility) %.4f  (%d sessions, bundles %s)" % (sys.argv[2], r["ctr"], r["ndcg"], r["result"]["sessions"], ",".join(r["result"]["bundles"])))' "$dir/$1.json" "$1"
}

step "world and the linear bundle ($ITEMS items, $USERS users)"
$bin gen --items "$ITEMS" --users "$USERS" --out "$dir/world" >/dev/null
$bin build >/dev/null
linear=$(current)
$bin serve >"$dir/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
serving "$linear"

step "training traffic on the linear ranker: $TRAIN_SESSIONS sessions (seed 1, explore rate $EXPLORE)"
simulate train-linear 1 "$TRAIN_SESSIONS"

step "train rank: join, train, gate, promote"
RECSYS_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT $bin train rank
if [ ! -s "$dir/models/ranker.onnx" ]; then
  echo "the gate did not promote the trained model; see $bin runs" >&2
  exit 1
fi

step "build with the promoted model and reload (admin API)"
$bin build >/dev/null
trees=$(current)
curl -sf -X POST "http://127.0.0.1:$ADMIN_PORT/admin/reload"
echo
serving "$trees"

# The rebuilt bundle also has the collaborative sources trained from the
# training traffic; the linear bundle has none. The ranker comparison asks
# both for the sources a bundle without events has.
nocollab=content,popular,fresh
step "next traffic: $EVAL_SESSIONS new sessions (seed 2) on the trained ranker (recommendations from $nocollab)"
simulate eval-trees 2 "$EVAL_SESSIONS" --recommend-sources "$nocollab"

step "the same sessions (seed 2) on the trained ranker with every recommendation source (co-engagement and ALS too)"
simulate eval-collab 2 "$EVAL_SESSIONS"

step "roll back to the linear bundle; the same $EVAL_SESSIONS sessions (seed 2)"
$bin rollback --to "$linear"
kill -HUP $server  # SIGHUP reloads too
serving "$linear"
simulate eval-linear 2 "$EVAL_SESSIONS" --recommend-sources "$nocollab"

step "result"
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
a, b = (json.load(open(f"{d}/eval-{n}.json")) for n in ("linear", "trees"))
for key, label in (("ctr", "CTR"), ("ndcg", "NDCG@10 vs hidden utility")):
    print(f"{label:28s} linear {a[key]:.4f}  trees {b[key]:.4f}  ({b[key]/a[key]-1:+.1%})")
for s in ("search", "recommend"):
    print(f"  {s:26s} CTR {a[s+'_ctr']:.4f} -> {b[s+'_ctr']:.4f}   NDCG {a[s+'_ndcg']:.4f} -> {b[s+'_ndcg']:.4f}")
c = json.load(open(f"{d}/eval-collab.json"))
print(f"recommend, trained ranker: content, popular, fresh CTR {b['recommend_ctr']:.4f} NDCG {b['recommend_ndcg']:.4f}; "
      f"all sources CTR {c['recommend_ctr']:.4f} ({c['recommend_ctr']/b['recommend_ctr']-1:+.1%}) NDCG {c['recommend_ndcg']:.4f} ({c['recommend_ndcg']/b['recommend_ndcg']-1:+.1%})")
PY
