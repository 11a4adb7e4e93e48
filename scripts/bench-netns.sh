#!/usr/bin/env bash
# Remote transfer over rate-limited links: two cafshmd engines in two network namespaces joined
# by a veth pair (as tests/test_netns.cpp builds them), engine A's uplink shaped with tc tbf.
# For each link, batches of 16 distinct blocks go from A to B with `cafshm transmit --json`, at
# most P at a time (P = 1, 4, 16); each batch is repeated. Records per batch: wall time,
# aggregate throughput, each transmit's own seconds, failures and their errors, both daemons'
# peak RSS (VmHWM, reset before the batch), and whether every delivered block is byte-identical
# to its source (sha256 of `cafshm get` at B against the file that was put at A).
#
# usage: scripts/bench-netns.sh [--no-build] [--reps N] [--links LIST] [--parallel LIST] [--out DIR]
#   --no-build       use build/bin/cafshmd and build/bin/cafshm as they are
#   --reps N         batches per link and parallelism (default 3)
#   --links LIST     comma-separated, from: none (unshaped veth), 1gbit, 40mbit (default all three)
#   --parallel LIST  comma-separated transmits at a time (default 1,4,16)
#   --out DIR        results directory (default bench/results/netns): latest.md, runs.jsonl
#
# Needs root and iproute2 (ip netns, ip link, tc) with the tbf qdisc. Blocks: 64 MiB on the
# unshaped and 1 Gbit/s links, 4 MiB on the 40 Mbit/s link (16 of each, random bytes, stored at
# A once). tbf: rate R burst 256kb latency 500ms on A's side of the veth (B's side unshaped).
# Namespaces cafshm-bench-{a,b}-PID, addresses 10.201.(PID % 250).{1,2}/30, engines
# cafshm-bench-netns-{a,b}-PID: all of them, every process the script started, the engines'
# /dev/shm objects and the temporary directory are removed on every exit (normal end, error,
# Ctrl-C, SIGTERM).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

build=1
reps=3
links=none,1gbit,40mbit
parallel=1,4,16
out="$root/bench/results/netns"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0; shift ;;
    --reps) reps=${2:?--reps needs a number}; shift 2 ;;
    --links) links=${2:?--links needs a list}; shift 2 ;;
    --parallel) parallel=${2:?--parallel needs a list}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "bench-netns: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "bench-netns: --reps: expected a positive number" >&2; exit 2; }
IFS=, read -r -a link_list <<<"$links"
IFS=, read -r -a parallel_list <<<"$parallel"
for l in "${link_list[@]}"; do
  case "$l" in none|1gbit|40mbit) ;; *) echo "bench-netns: unknown link '$l' (none 1gbit 40mbit)" >&2; exit 2 ;; esac
done
for p in "${parallel_list[@]}"; do
  [[ "$p" =~ ^[1-9][0-9]*$ ]] && [ "$p" -le 16 ] \
    || { echo "bench-netns: --parallel: expected numbers from 1 to 16, got '$p'" >&2; exit 2; }
done

[ "$(id -u)" -eq 0 ] || { echo "bench-netns: needs root (ip netns, tc)" >&2; exit 1; }
for tool in ip tc sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench-netns: '$tool' not found (iproute2, coreutils)" >&2; exit 1; }
done

if [ "$build" -eq 1 ]; then
  build_type=${CAFSHM_BUILD_TYPE:-RelWithDebInfo}
  cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
  cmake --build "$root/build" --target cafshmd cafshm-cli -j"$(nproc)"
fi
daemon="$root/build/bin/cafshmd"
cli="$root/build/bin/cafshm"
for b in "$daemon" "$cli"; do
  [ -x "$b" ] || { echo "bench-netns: $b is missing (build without --no-build)" >&2; exit 1; }
done

source "$root/scripts/lib/process-groups.bash"

pid=$$
ns_a=cafshm-bench-a-$pid
ns_b=cafshm-bench-b-$pid
octet=$((pid % 250))
addr_a=10.201.$octet.1
addr_b=10.201.$octet.2
engine_a=cafshm-bench-netns-a-$pid
engine_b=cafshm-bench-netns-b-$pid
work=$(mktemp -d /tmp/cafshm-bench-netns.XXXXXX)
made_ns=()
# After stop_groups (the daemons end first): namespaces (with them the veth pair), the engines'
# shared-memory objects (arena, admin, door, inboxes) should they remain, the temporary files.
cleanup() {
  local ns
  for ns in "${made_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "/dev/shm/$engine_a" "/dev/shm/$engine_a".* "/dev/shm/$engine_b" "/dev/shm/$engine_b".*
  rm -rf "$work"
}
on_exit cleanup

say() { echo "bench-netns: $*" >&2; }
die() { say "$*"; exit 1; }

# Drops a finished group from the list stop_groups signals (its id may be reused later).
forget_group() {
  local keep=() g
  for g in "${process_groups[@]}"; do [ "$g" = "$1" ] || keep+=("$g"); done
  process_groups=("${keep[@]}")
}

# The network: two namespaces, a veth pair, a private /30.
for ns in "$ns_a" "$ns_b"; do
  ip netns add "$ns"
  made_ns+=("$ns")
done
ip -n "$ns_a" link add veth-a type veth peer name veth-b netns "$ns_b"
ip -n "$ns_a" addr add "$addr_a/30" dev veth-a
ip -n "$ns_b" addr add "$addr_b/30" dev veth-b
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set veth-a up
ip -n "$ns_b" link set veth-b up

# A's uplink: tbf at rate $1, or no qdisc of ours for "none".
shape() {
  tc -n "$ns_a" qdisc del dev veth-a root 2>/dev/null || true
  [ "$1" = none ] || tc -n "$ns_a" qdisc add dev veth-a root tbf rate "$1" burst 256kb latency 500ms
}

# Engines: arenas for 16 blocks of 64 MiB plus 16 of 4 MiB at A, and 16 of 64 MiB at B.
# chunk, window, stall_timeout and request_timeout are written out with their default values.
cat >"$work/a.yaml" <<EOF
engine:
  name: $engine_a
  arena: 1152MiB
  listen: {host: 127.0.0.1, port: 4242}
client:
  request_timeout: 5s
remote:
  cache: 0
  unauthenticated_peers: true
  allow_dial: [10.201.0.0/16]
  chunk: 1MiB
  window: 4
  stall_timeout: 30s
EOF
cat >"$work/b.yaml" <<EOF
engine:
  name: $engine_b
  arena: 1152MiB
  listen: {host: 127.0.0.1, port: 4242}
client:
  request_timeout: 5s
remote:
  cache: 0
  unauthenticated_peers: true
  stall_timeout: 30s
  listen: {host: $addr_b, port: 4243}
EOF

# Starts cafshmd in namespace $1 with config $2, logging to $work/$3.log; waits (20 s at most)
# for line $4. Sets daemon_pid (the cafshmd process: setsid and `ip netns exec` exec it).
start_daemon() {
  local log="$work/$3.log"
  start_group ip netns exec "$1" "$daemon" --config "$2" >"$log" 2>&1
  daemon_pid=$!
  for _ in $(seq 200); do
    grep -q "$4" "$log" && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$log" >&2; die "cafshmd in $1 stopped at start"; }
    sleep 0.1
  done
  grep -q "$4" "$log" || { cat "$log" >&2; die "cafshmd in $1 did not start within 20 s"; }
  [ "$(readlink "/proc/$daemon_pid/exe")" = "$(readlink -f "$daemon")" ] \
    || die "process $daemon_pid is not cafshmd (cannot read its memory)"
}
start_daemon "$ns_a" "$work/a.yaml" a "cafshmd listening on "
pid_a=$daemon_pid
start_daemon "$ns_b" "$work/b.yaml" b "cafshmd peers on "
pid_b=$daemon_pid

cli_a() { ip netns exec "$ns_a" "$cli" --engine 127.0.0.1:4242 "$@"; }
cli_b() { ip netns exec "$ns_b" "$cli" --engine 127.0.0.1:4242 "$@"; }

# The first number after "key": in `stat --json` of engine $1 (a or b); top-level keys come first.
stat_number() {
  "cli_$1" stat --json | grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2
}

# 16 blocks of $1 MiB named blk$1-00..15 at A; their sha256 in sums[name].
declare -A sums
store_blocks() {
  local mib=$1 i name
  for i in $(seq -w 0 15); do
    name=blk$mib-$i
    [ -z "${sums[$name]:-}" ] || continue
    [ "$i" != 00 ] || say "storing 16 blocks of $mib MiB at A"
    head -c $((mib << 20)) /dev/urandom >"$work/block.bin"
    sums[$name]=$(sha256sum <"$work/block.bin" | cut -d' ' -f1)
    cli_a put "$name" "$work/block.bin" >/dev/null
  done
  rm -f "$work/block.bin"
}

kib_of() { # pid, field of /proc/PID/status
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

mkdir -p "$out"
runs="$work/runs.jsonl"
: >"$runs"
uptime_before=$(uptime)
started=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
say "namespaces $ns_a ($addr_a) and $ns_b ($addr_b), engines pid $pid_a and $pid_b"

# One batch: the 16 blocks of $2 MiB from A to B, at most $3 transmits at a time; link $1, rep $4.
run_batch() {
  local link=$1 mib=$2 par=$3 rep=$4
  local names=() i
  for i in $(seq -w 0 15); do names+=("blk$mib-$i"); done
  local -A running=() # pid -> index
  local status=() next=0 p ended
  echo 5 >"/proc/$pid_a/clear_refs"
  echo 5 >"/proc/$pid_b/clear_refs"
  local rss_a rss_b load
  rss_a=$(kib_of "$pid_a" VmRSS)
  rss_b=$(kib_of "$pid_b" VmRSS)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  local t0 t1
  t0=$(date +%s.%N)
  while [ "$next" -lt 16 ] || [ "${#running[@]}" -gt 0 ]; do
    while [ "$next" -lt 16 ] && [ "${#running[@]}" -lt "$par" ]; do
      start_group ip netns exec "$ns_a" "$cli" --engine 127.0.0.1:4242 transmit "${names[$next]}" \
        --to "$addr_b:4243" --json >"$work/t$next.out" 2>"$work/t$next.err"
      running[$!]=$next
      next=$((next + 1))
    done
    ended=0
    for p in "${!running[@]}"; do
      kill -0 "$p" 2>/dev/null && continue
      i=${running[$p]}
      status[$i]=0
      wait "$p" || status[$i]=$?
      unset "running[$p]"
      forget_group "$p"
      ended=1
    done
    [ "$ended" -eq 1 ] || sleep 0.02
  done
  t1=$(date +%s.%N)
  kill -0 "$pid_a" 2>/dev/null || die "cafshmd A ended during the batch: $(tail -5 "$work/a.log")"
  kill -0 "$pid_b" 2>/dev/null || die "cafshmd B ended during the batch: $(tail -5 "$work/b.log")"
  local hwm_a hwm_b
  hwm_a=$(kib_of "$pid_a" VmHWM)
  hwm_b=$(kib_of "$pid_b" VmHWM)

  # Each transmit's own result; then each copy at B against its source, and B emptied.
  local seconds=() payload=0 failed=0 errors=() verified=0 mismatched=0 s e sum
  for i in $(seq 0 15); do
    if [ "${status[$i]}" -eq 0 ]; then
      s=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' "$work/t$i.out")
      seconds+=("$s")
      payload=$((payload + $(sed -n 's/.*"payload_bytes":\([0-9]*\).*/\1/p' "$work/t$i.out")))
      sum=$(cli_b get "${names[$i]}" - | sha256sum | cut -d' ' -f1)
      if [ "$sum" = "${sums[${names[$i]}]}" ]; then verified=$((verified + 1)); else mismatched=$((mismatched + 1)); fi
      cli_b rm "${names[$i]}"
    else
      failed=$((failed + 1))
      e=$(grep -v "^transmit '" "$work/t$i.err" | tail -1 || true)
      errors+=("${e:-exit status ${status[$i]}, no message}")
      cli_b rm "${names[$i]}" >/dev/null 2>&1 || true
    fi
  done
  # A failed transfer's partial block is freed by B on its own; the next batch starts empty.
  for _ in $(seq 600); do
    [ "$(stat_number b blocks)" = 0 ] && [ "$(stat_number b transmits_in)" = 0 ] && break
    sleep 0.1
  done
  [ "$(stat_number b blocks)" = 0 ] || die "engine B still holds blocks 60 s after a batch"

  local json_seconds json_errors=""
  json_seconds=$(IFS=,; echo "${seconds[*]}")
  for e in "${errors[@]}"; do
    e=${e//\\/\\\\}
    json_errors+="${json_errors:+,}\"${e//\"/\\\"}\""
  done
  printf '{"link":"%s","block_mib":%d,"blocks":16,"parallel":%d,"rep":%d,"wall_s":%s,"bytes":%d,"payload_bytes":%d,"failed":%d,"errors":[%s],"seconds":[%s],"verified":%d,"mismatched":%d,"sender_rss_kib":%d,"sender_hwm_kib":%d,"receiver_rss_kib":%d,"receiver_hwm_kib":%d,"loadavg":"%s"}\n' \
    "$link" "$mib" "$par" "$rep" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
    $((16 * (mib << 20))) "$payload" "$failed" "$json_errors" "$json_seconds" "$verified" \
    "$mismatched" "$rss_a" "$hwm_a" "$rss_b" "$hwm_b" "$load" | tee -a "$runs"
}

declare -A qdisc
for link in "${link_list[@]}"; do
  case "$link" in 40mbit) mib=4 ;; *) mib=64 ;; esac
  store_blocks "$mib"
  shape "$link"
  qdisc[$link]=$(tc -n "$ns_a" qdisc show dev veth-a root | head -1)
  say "link $link: ${qdisc[$link]}"
  for par in "${parallel_list[@]}"; do
    for rep in $(seq "$reps"); do
      run_batch "$link" "$mib" "$par" "$rep"
    done
  done
done
uptime_after=$(uptime)
stop_groups

# Median of the numbers on stdin, and min and max: "median min max".
stats() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}
field() { # jsonl on stdin, key: one value per line
  sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"
}
growth() { # jsonl on stdin, sender|receiver: VmHWM - VmRSS at the batch's start, KiB
  sed -n "s/.*\"$1_rss_kib\":\([0-9]*\),\"$1_hwm_kib\":\([0-9]*\).*/\2 \1/p" | awk '{ print $1 - $2 }'
}
mib_of() { awk -v k="$1" 'BEGIN { print k / 1024 }'; }

{
  echo "# Remote transfer over rate-limited links (network namespaces, tbf)"
  echo
  echo "Written by \`scripts/bench-netns.sh\`, started $started, $reps batch(es) per row."
  echo
  echo "- kernel: $(uname -srm); $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
  echo "- uptime before: \`$(echo "$uptime_before" | sed 's/^ *//')\`"
  echo "- uptime after: \`$(echo "$uptime_after" | sed 's/^ *//')\`"
  echo "- network: namespaces joined by a veth pair, $addr_a/30 (A, sender) and $addr_b/30 (B, receiver); only A's side shaped:"
  for link in "${link_list[@]}"; do
    if [ "$link" = none ]; then
      echo "  - none: \`${qdisc[$link]}\` (the default qdisc, no shaping)"
    else
      echo "  - $link: \`tc qdisc add dev veth-a root tbf rate $link burst 256kb latency 500ms\` (shown as \`${qdisc[$link]}\`)"
    fi
  done
  echo "- blocks: 16 distinct blocks of random bytes per batch, 64 MiB each on the unshaped and 1gbit links (1 GiB per batch), 4 MiB each on the 40mbit link (64 MiB per batch); each block sent once per batch, at most P transmits at a time (\`cafshm transmit NAME --to $addr_b:4243 --json\`, one CLI process each, inside A's namespace)"
  echo "- engines: remote.chunk 1MiB, window 4, stall_timeout 30s, cache 0, client.request_timeout 5s; arena 1152MiB each"
  echo "- wall: from the start of the first transmit process to the end of the last (includes each CLI's start); throughput = bytes of the batch / wall (MB = 10^6 bytes); ÷ rate = throughput × 8 / tbf rate"
  echo "- transmit s: each transmit's own seconds from its --json (lookup to verified copy), over all batches of the row"
  echo "- VmHWM: peak resident set of each cafshmd during the batch (/proc/PID/status, reset by clear_refs 5 right before it); it includes the arena pages the daemon has touched, also in earlier batches (shared pages stay resident); +growth: median of VmHWM minus VmRSS at the batch's start"
  echo "- verified: copies at B whose sha256 (\`cafshm get\`) equals the source's, of those delivered"
  echo
  echo "| link | block | P | wall s, median (min–max) | MB/s, median (min–max) | ÷ rate | transmit s, min / median / max | failed | sender VmHWM MiB, median (max), +growth | receiver VmHWM MiB, median (max), +growth | verified |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for link in "${link_list[@]}"; do
    for par in "${parallel_list[@]}"; do
      rows=$(grep "\"link\":\"$link\"" "$runs" | grep "\"parallel\":$par," || true)
      [ -n "$rows" ] || continue
      n=$(echo "$rows" | wc -l)
      mib=$(echo "$rows" | field block_mib | head -1)
      read -r wm wmin wmax < <(echo "$rows" | field wall_s | stats)
      read -r tm tmin tmax < <(echo "$rows" | awk -v b=$((16 * (mib << 20))) \
        '{ match($0, /"wall_s":[0-9.]+/); w = substr($0, RSTART + 9, RLENGTH - 9); print b / w / 1e6 }' | stats)
      case "$link" in 1gbit) bps=1e9 ;; 40mbit) bps=40e6 ;; *) bps=0 ;; esac
      ratio=$(awk -v t="$tm" -v r="$bps" 'BEGIN { if (r == 0) print "—"; else printf "%.2f", t * 8e6 / r }')
      read -r sm smin smax < <(echo "$rows" | sed -n 's/.*"seconds":\[\([0-9.,]*\)\].*/\1/p' | tr , '\n' | grep . | stats)
      failed=$(echo "$rows" | field failed | awk '{ s += $1 } END { print s }')
      verified=$(echo "$rows" | field verified | awk '{ s += $1 } END { print s }')
      delivered=$(echo "$rows" | awk -F'"failed":' '{ split($2, a, ","); s += 16 - a[1] } END { print s }')
      read -r ham _ hax < <(echo "$rows" | field sender_hwm_kib | stats)
      read -r hbm _ hbx < <(echo "$rows" | field receiver_hwm_kib | stats)
      read -r gam _ _ < <(echo "$rows" | growth sender | stats)
      read -r gbm _ _ < <(echo "$rows" | growth receiver | stats)
      printf '| %s | %d MiB | %d | %.2f (%.2f–%.2f) | %.1f (%.1f–%.1f) | %s | %.2f / %.2f / %.2f | %d of %d | %.0f (%.0f), +%.0f | %.0f (%.0f), +%.0f | %d of %d |\n' \
        "$link" "$mib" "$par" "$wm" "$wmin" "$wmax" "$tm" "$tmin" "$tmax" "$ratio" \
        "$smin" "$sm" "$smax" "$failed" $((16 * n)) \
        "$(mib_of "$ham")" "$(mib_of "$hax")" "$(mib_of "$gam")" \
        "$(mib_of "$hbm")" "$(mib_of "$hbx")" "$(mib_of "$gbm")" \
        "$verified" "$delivered"
    done
  done
  echo
  if grep -q '"failed":[1-9]' "$runs"; then
    echo "Errors of failed transmits (count, message):"
    echo
    sed -n 's/.*"errors":\[\(.*\)\],"seconds".*/\1/p' "$runs" | grep . | sed 's/","/"\n"/g' | sort | uniq -c \
      | sed 's/^ *\([0-9]*\) "\(.*\)"$/- \1 × `\2`/'
  else
    echo "No transmit failed."
  fi
  echo
  echo "Raw lines, one per batch: \`runs.jsonl\` next to this file."
} >"$work/latest.md"
cp "$runs" "$out/runs.jsonl"
cp "$work/latest.md" "$out/latest.md"
say "results in $out/latest.md"
