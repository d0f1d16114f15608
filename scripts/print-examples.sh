#!/usr/bin/env bash
# Prints three example requests against the demo server, using ids from the
# catalog the demo bundle was built from. Args: catalog.jsonl [base url]
set -euo pipefail
catalog=$1
base=${2:-http://localhost:8080}
ids=($(head -n 3 "$catalog" | grep -o '"id":"[^"]*"' | cut -d'"' -f4))
cat <<MSG

Once the server logs "serving", try (search: hybrid lexical + vector retrieval, 10 ranked items; add "explain": true for each hit's sources; recommend: 10 items; feedback: 202):

  curl -s $base/v1/search -H 'Content-Type: application/json' \\
    -d '{"query": "wireless headphones", "k": 10, "user": {"id": "u1", "age": 30}}'

  curl -s $base/v1/recommend -H 'Content-Type: application/json' \\
    -d '{"user": {"id": "u1"}, "recent_items": ["${ids[0]}", "${ids[1]}"], "k": 10}'

  curl -s -o /dev/null -w '%{http_code}\\n' $base/v1/feedback -H 'Content-Type: application/json' \\
    -d '{"type": "click", "schema_version": 1, "timestamp": "'"\$(date -u +%FT%TZ)"'", "user_id": "u1", "item_id": "${ids[2]}"}'

Also: $base/openapi.yaml, $base/metrics, $base/readyz. Ctrl-C stops the server.

MSG
