#!/usr/bin/env bash
# End-to-end latency while the broker's retention deletes gigabytes (docs/BENCHMARKS.md,
# item 25). Starts a fresh broker from BIN_DIR on 127.0.0.1:19500 with its data in
# DATA_DIR (removed first and at the end), runs one workload, prints the e2e summary and
# its 5 s series, and stops the broker by its PID.
#
#   retention_stall.sh BIN_DIR DATA_DIR bulk    # 60 MB/s writer beside e2e, 256 MiB segments
#   retention_stall.sh BIN_DIR DATA_DIR quiet   # 4 GB written first, then deleted during e2e
#
# The broker's retention pass runs every 60 s of uptime, so both runs last over a minute.
set -euo pipefail
bin_dir=$1
data_dir=$2
workload=${3:-bulk}
flush=${FLUSH:-interval:1000}
out=$(mktemp -d)
export STRATA_BROKERS=127.0.0.1:19500
e2e=(e2e --topic t --create -p 1 -r 1 --record-size 1000 --producers 1 --acks 1
     --rate 10000 --batch-size 16384 --linger 0ms --consumers 1 --format json)

# Removing gigabytes at once stalls some disks (item 24): cut big files 64 MiB at a time.
remove_gently() {
    [[ -d $1 ]] || return 0
    find "$1" -type f -size +64M -print0 | while IFS= read -r -d '' file; do
        while [[ $(stat -c %s "$file") -gt 0 ]]; do
            truncate -s -64M "$file"
            sleep 0.05
        done
    done
    rm -rf "$1"
}

remove_gently "$data_dir"
mkdir -p "$data_dir"
broker_args=(--data-dir "$data_dir" --listen 127.0.0.1:19500 --flush "$flush")
if [[ $workload == bulk ]]; then
    broker_args+=(--segment-bytes 268435456 --retention-bytes 536870912)
fi
"$bin_dir/strata-broker" "${broker_args[@]}" > "$out/broker.log" 2>&1 &
broker_pid=$!
trap 'kill -TERM $broker_pid 2>/dev/null || true; wait $broker_pid 2>/dev/null || true' EXIT
sleep 1

case $workload in
bulk)
    "$bin_dir/strata" bench produce --topic bulk --create -p 1 -r 1 --duration 140s \
        --warmup 0s --record-size 1000 --rate 60000 --acks 1 --batch-size 1048576 \
        --linger 5ms > "$out/bulk.txt" 2>/dev/null &
    writer_pid=$!
    "$bin_dir/strata" bench "${e2e[@]}" --duration 130s --warmup 5s > "$out/e2e.json" 2>/dev/null
    wait $writer_pid
    ;;
quiet)
    "$bin_dir/strata" bench produce --topic bulk --create -p 1 -r 1 --records 4000000 \
        --warmup 0s --record-size 1000 --acks 1 --batch-size 1048576 --linger 5ms \
        > "$out/bulk.txt" 2>/dev/null
    (sleep 10 && "$bin_dir/strata" topic alter-config bulk --set retention_bytes=1000000 > /dev/null) &
    alter_pid=$!
    "$bin_dir/strata" bench "${e2e[@]}" --duration 90s --warmup 3s > "$out/e2e.json" 2>/dev/null
    wait $alter_pid
    ;;
*)
    echo "unknown workload $workload (bulk or quiet)" >&2
    exit 2
    ;;
esac

python3 - "$out/e2e.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
e2e = report["summary"]["e2e_ms"]
print("e2e p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms" % (e2e["p50"], e2e["p99"], e2e["p999"], e2e["max"]))
print("p99 per 5 s:", report["series"]["e2e_p99_ms"])
PY
grep "retention deleted" "$out/broker.log" || true
kill -TERM $broker_pid
wait $broker_pid || true
trap - EXIT
remove_gently "$data_dir"
rm -rf "$out"
