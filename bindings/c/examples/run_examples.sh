#!/usr/bin/env bash
# Builds the C examples and checks them against a 3-member cluster of `accord server`
# processes on loopback:
#   (a) queue_workers: 60 items, 3 concurrent workers, one shared file written under the fenced
#       mutex — 60 lines, each job exactly once, fencing tokens non-decreasing;
#   (b) singleton_job: two candidates; the leader is killed -9; the other is elected (after the
#       dead one's 2 s session expires) with a larger token, and nothing of the first follows.
#
# usage: run_examples.sh ACCORD_BINARY LIBRARY_DIR INCLUDE_DIR
# Prints "examples: ok" and exits 0 on success; exits non-zero with a message otherwise.
# Every wait is bounded; every process started is killed on exit.

set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 ACCORD_BINARY LIBRARY_DIR INCLUDE_DIR" >&2
    exit 2
fi
abspath() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
ACCORD=$(abspath "$1")
LIB_DIR=$(cd "$2" && pwd) || exit 2
INCLUDE_DIR=$(cd "$3" && pwd) || exit 2
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$ACCORD" ] || { echo "examples: $ACCORD is not executable" >&2; exit 2; }
[ -e "$LIB_DIR/libaccord.so" ] || { echo "examples: no libaccord.so in $LIB_DIR" >&2; exit 2; }
[ -e "$INCLUDE_DIR/accord.h" ] || { echo "examples: no accord.h in $INCLUDE_DIR" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/accord-examples.XXXXXX") || exit 1
PIDS=()              # every process started, killed on exit
SERVER_PIDS=()
ENDPOINTS=""
STARTED=$SECONDS

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "examples: interrupted" >&2; exit 130' INT TERM HUP

log() { echo "examples: $*"; }
now_ms() { date +%s%3N; }

fail() {
    echo "examples: FAILED: $*" >&2
    local f
    for f in "$WORK"/*.out "$WORK"/*.txt "$WORK"/server*.log; do
        [ -s "$f" ] || continue
        echo "---- $(basename "$f") (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}

# wait_pid PID SECONDS: waits for a child to exit, killing it after SECONDS; returns its exit
# status (124 when it had to be killed).
wait_pid() {
    local pid=$1 limit=$2 start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            kill -9 "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            return 124
        fi
        sleep 0.1
    done
    wait "$pid"
}

# run_bounded SECONDS OUTPUT_FILE COMMAND...: runs a command with a time limit.
run_bounded() {
    local limit=$1 out=$2
    shift 2
    "$@" >"$out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_pid "$pid" "$limit"
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds; fails after SECONDS.
wait_for() {
    local limit=$1 start=$SECONDS
    shift
    until "$@"; do
        [ $((SECONDS - start)) -ge "$limit" ] && return 1
        sleep 0.1
    done
}

free_ports() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))'
    else # try random ports until three are not answering
        local ports=() p
        while [ ${#ports[@]} -lt 3 ]; do
            p=$((20000 + RANDOM % 30000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                case " ${ports[*]} " in *" $p "*) ;; *) ports+=("$p") ;; esac
            fi
        done
        echo "${ports[*]}"
    fi
}

has_leader() {
    "$ACCORD" status --endpoints "$ENDPOINTS" --timeout-ms 1000 2>/dev/null |
        awk '$3 == "leader" { found = 1 } END { exit !found }'
}

servers_alive() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || return 1
    done
}

# Starts the cluster; a port taken between choosing and binding makes a member exit: then all
# stop and new ports are tried (3 attempts).
start_cluster() {
    local attempt i j peers pid
    for attempt in 1 2 3; do
        read -r -a ports <<<"$(free_ports)"
        ENDPOINTS="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
        SERVER_PIDS=()
        for i in 0 1 2; do
            peers=""
            for j in 0 1 2; do
                [ "$i" = "$j" ] && continue
                peers="${peers:+$peers,}$((j + 1))=127.0.0.1:${ports[$j]}"
            done
            "$ACCORD" server --plaintext --id $((i + 1)) --listen "127.0.0.1:${ports[$i]}" --peers "$peers" \
                --data-dir "$WORK/data$attempt/n$((i + 1))" --tick-ms 20 \
                >"$WORK/server$((i + 1)).log" 2>&1 &
            pid=$!
            PIDS+=("$pid")
            SERVER_PIDS+=("$pid")
        done
        local start=$SECONDS
        while [ $((SECONDS - start)) -lt 20 ]; do
            servers_alive || break
            if has_leader; then
                log "cluster up at $ENDPOINTS (attempt $attempt)"
                return 0
            fi
            sleep 0.2
        done
        log "cluster attempt $attempt failed; retrying on other ports"
        for pid in "${SERVER_PIDS[@]}"; do
            kill -9 "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        done
    done
    fail "no leader after 3 attempts to start the cluster"
}

# ---- build -----------------------------------------------------------------------------
mkdir -p "$WORK/bin"
for example in queue_workers singleton_job; do
    cc -std=c99 -Wall -Wextra -Werror -I"$INCLUDE_DIR" "$HERE/$example.c" \
        -L"$LIB_DIR" -laccord -lpthread -Wl,-rpath,"$LIB_DIR" -o "$WORK/bin/$example" \
        >"$WORK/build-$example.out" 2>&1 || fail "cannot build $example"
done
QW="$WORK/bin/queue_workers"
SJ="$WORK/bin/singleton_job"
log "built queue_workers and singleton_job"

start_cluster

# ---- (a) queue workers -----------------------------------------------------------------
ITEMS=60
WORKERS=3
QUEUE="jobs"
SHARED="$WORK/shared.txt"
run_bounded 60 "$WORK/producer.out" "$QW" "$ENDPOINTS" "$QUEUE" --produce "$ITEMS" ||
    fail "the producer failed (status $?)"
worker_pids=()
for w in $(seq 1 $WORKERS); do
    "$QW" "$ENDPOINTS" "$QUEUE" "$SHARED" 0 >"$WORK/worker$w.out" 2>&1 &
    worker_pids+=("$!")
    PIDS+=("$!")
done
for w in $(seq 1 $WORKERS); do
    wait_pid "${worker_pids[$((w - 1))]}" 120 || fail "worker $w failed (status $?)"
done
total=0
summary=""
for w in $(seq 1 $WORKERS); do
    n=$(sed -n 's/^worker [0-9]*: processed=\([0-9]*\)$/\1/p' "$WORK/worker$w.out")
    [ -n "$n" ] || fail "worker $w printed no summary line"
    total=$((total + n))
    summary="$summary $n"
done
[ -f "$SHARED" ] || fail "the shared file was not written"
lines=$(wc -l <"$SHARED")
[ "$lines" -eq "$ITEMS" ] || fail "the shared file has $lines lines, expected $ITEMS"
[ "$total" -eq "$ITEMS" ] || fail "the workers processed $total items, expected $ITEMS"
seq 0 $((ITEMS - 1)) | sed 's/^/job-/' | sort >"$WORK/expected-jobs.txt"
awk '{ print $2 }' "$SHARED" | sort >"$WORK/written-jobs.txt"
cmp -s "$WORK/expected-jobs.txt" "$WORK/written-jobs.txt" ||
    fail "the shared file does not hold each job exactly once: $(diff "$WORK/expected-jobs.txt" "$WORK/written-jobs.txt" | head -5 | tr '\n' ' ')"
awk 'NF != 2 || $1 !~ /^[0-9]+$/ { bad = "malformed line " NR ": " $0; exit }
     NR > 1 && $1 + 0 < prev { bad = "token " $1 " on line " NR " is below " prev; exit }
     { prev = $1 + 0 }
     END { if (bad != "") { print bad; exit 1 } }' "$SHARED" >"$WORK/token-check.out" ||
    fail "fencing tokens: $(cat "$WORK/token-check.out")"
if grep -q 'fenced out' "$WORK"/worker*.out; then
    fail "a worker was fenced out: the mutex was granted to two holders at once"
fi
log "queue_workers: $ITEMS items, each written once in token order (per worker:$summary)"

# ---- (b) singleton job -----------------------------------------------------------------
OUTPUT="$WORK/singleton.txt"
ELECTION="singleton"
"$SJ" "$ENDPOINTS" "$ELECTION" A "$OUTPUT" >"$WORK/singleton-A.out" 2>&1 &
PID_A=$!
PIDS+=("$PID_A")
"$SJ" "$ENDPOINTS" "$ELECTION" B "$OUTPUT" >"$WORK/singleton-B.out" 2>&1 &
PID_B=$!
PIDS+=("$PID_B")

elected_count() { if [ -f "$OUTPUT" ]; then grep -c ' elected$' "$OUTPUT"; else echo 0; fi; }
elected_at_least() { [ "$(elected_count)" -ge "$1" ]; }
ticks_of() { [ -f "$OUTPUT" ] && [ "$(grep -c "^$1 .* tick\$" "$OUTPUT")" -ge "$2" ]; }

wait_for 15 elected_at_least 1 || fail "no singleton was elected within 15 s"
read -r FIRST FIRST_TOKEN _ < <(grep ' elected$' "$OUTPUT" | head -n 1)
if [ "$FIRST" = A ]; then
    FIRST_PID=$PID_A SECOND=B SECOND_PID=$PID_B
else
    FIRST_PID=$PID_B SECOND=A SECOND_PID=$PID_A
fi
wait_for 5 ticks_of "$FIRST" 3 || fail "$FIRST was elected but does not tick"
[ "$(elected_count)" -eq 1 ] || fail "both singletons were elected at once"
kill -0 "$SECOND_PID" 2>/dev/null || fail "the standby $SECOND exited early"
{ kill -9 "$FIRST_PID" && wait "$FIRST_PID"; } 2>/dev/null
KILLED_AT=$(now_ms)
log "singleton_job: $FIRST elected (token $FIRST_TOKEN), killed -9; waiting for $SECOND"
wait_for 15 elected_at_least 2 || fail "$SECOND was not elected within 15 s of $FIRST's death"
TAKEOVER_MS=$(($(now_ms) - KILLED_AT))
[ "$(elected_count)" -eq 2 ] || fail "more than two elections were logged"
read -r NAME2 SECOND_TOKEN _ < <(grep ' elected$' "$OUTPUT" | sed -n 2p)
[ "$NAME2" = "$SECOND" ] || fail "the second election went to $NAME2, expected $SECOND"
[ "$SECOND_TOKEN" -gt "$FIRST_TOKEN" ] ||
    fail "the second leader's token $SECOND_TOKEN is not above the first's $FIRST_TOKEN"
wait_for 5 ticks_of "$SECOND" 2 || fail "$SECOND was elected but does not tick"
SECOND_LINE=$(grep -n "^$SECOND [0-9]* elected\$" "$OUTPUT" | cut -d: -f1)
awk -v first="$FIRST" -v ft="$FIRST_TOKEN" -v second="$SECOND" -v st="$SECOND_TOKEN" \
    -v from="$SECOND_LINE" '
    NF != 3 { print "malformed line " NR ": " $0; bad = 1; exit }
    $1 == first && $2 != ft { print "line " NR ": " first " wrote token " $2 ", not " ft; bad = 1; exit }
    $1 == second && $2 != st { print "line " NR ": " second " wrote token " $2 ", not " st; bad = 1; exit }
    $1 == second && NR < from { print "line " NR ": " second " wrote before its election"; bad = 1; exit }
    $1 == first && NR > from { print "line " NR ": " first " wrote after " second "was elected"; bad = 1; exit }
    END { exit bad }' "$OUTPUT" >"$WORK/singleton-check.out" ||
    fail "singleton output: $(cat "$WORK/singleton-check.out")"
# The survivor steps down cleanly on SIGTERM.
kill -TERM "$SECOND_PID"
wait_pid "$SECOND_PID" 10 || fail "$SECOND did not exit 0 on SIGTERM (status $?)"
log "singleton_job: $SECOND took over ${TAKEOVER_MS} ms after the kill, with token $SECOND_TOKEN > $FIRST_TOKEN; no line of $FIRST after it"

log "took $((SECONDS - STARTED)) s"
echo "examples: ok"
exit 0
