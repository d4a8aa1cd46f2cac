#!/usr/bin/env bash
# End-to-end benchmark (issue 6): Postfix smtp-sink on loopback as the
# server; on the same workloads, in one run: our smtp-send (release), a
# lettre-based sender built the same way (tests/bench/src/bin/lettre-send.rs)
# and Postfix smtp-source (the C load generator).
#
#   bash tests/bench/e2e.sh            # the full run (a few minutes)
#   RUNS=1 SMALL1_COUNT=500 SMALL8_COUNT=2000 BIG_COUNT=2 HUGE_MIB=20 \
#     RTT_COUNT=5 bash tests/bench/e2e.sh   # a quick check
#
# Workloads (counts overridable by the variables in brackets):
#   1k-x1  SMALL1_COUNT (5000) messages of 1 KiB over one connection
#   1k-x8  SMALL8_COUNT (20000) messages of 1 KiB over 8 connections
#   10m    BIG_COUNT (20) messages of BIG_MIB (10) MiB over one connection
#   huge   one message of HUGE_MIB (200) MiB (peak RSS is the point)
#   rtt    RTT_COUNT (30) messages of 1 KiB to RTT_RCPTS (10) recipients each,
#          through delay-proxy adding DELAY_MS (5) ms each way (10 ms RTT)
# lettre-send waits out a delayed ACK per message (~23 messages/s per
# connection), so on the 1 KiB workloads it sends fewer messages
# (LETTRE_COUNT_1K_X1=500, LETTRE_COUNT_1K_X8=2000; its rate does not depend
# on the count) to keep the run short; the table says how many each sent.
# WORKLOADS and CLIENTS select a subset (space-separated names), RUNS (3) the
# number of runs; each figure is the median over the runs.
#
# smtp-source: -d keeps one connection per session (without it, it
# reconnects for every message); -l is the body length, to which it adds a
# few header lines (~150 bytes), so it sends slightly more than the others.
# MiB/s is count x nominal size / wall time for every client.
# Peak RSS: /usr/bin/time's maximum resident set size of the client process.
# Every run is checked by its exit status and against smtp-sink's own
# message counter. smtp-send runs without --json, as the other clients print
# no report either.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

RUNS=${RUNS:-3}
SMALL1_COUNT=${SMALL1_COUNT:-5000}
SMALL8_COUNT=${SMALL8_COUNT:-20000}
SMALL8_CONNECTIONS=${SMALL8_CONNECTIONS:-8}
BIG_COUNT=${BIG_COUNT:-20}
BIG_MIB=${BIG_MIB:-10}
HUGE_MIB=${HUGE_MIB:-200}
RTT_COUNT=${RTT_COUNT:-30}
LETTRE_COUNT_1K_X1=${LETTRE_COUNT_1K_X1:-500}
LETTRE_COUNT_1K_X8=${LETTRE_COUNT_1K_X8:-2000}
RTT_RCPTS=${RTT_RCPTS:-10}
DELAY_MS=${DELAY_MS:-5}
WORKLOADS=${WORKLOADS:-"1k-x1 1k-x8 10m huge rtt"}
CLIENTS=${CLIENTS:-"smtp-send lettre-send smtp-source"}
PORT=${PORT:-22525}
PROXY_PORT=${PROXY_PORT:-22526}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
RESULTS=${RESULTS:-}

say() { printf 'e2e: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v smtp-sink >/dev/null || die "smtp-sink missing: run bash tests/setup.sh (installs postfix)"
command -v smtp-source >/dev/null || die "smtp-source missing: run bash tests/setup.sh (installs postfix)"
if [ ! -x /usr/bin/time ]; then
    [ "$(id -u)" -eq 0 ] || die "/usr/bin/time missing: apt-get install time"
    say "installing Debian's time (for peak RSS)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

# --- builds (release, both the same way) -----------------------------------
say "building smtp-send and lettre-send (release)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p smtp-cli
cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bins
smtp_send="${CARGO_TARGET_DIR:-$root/target}/release/smtp-send"
bench_bin="${CARGO_TARGET_DIR:-$here/target}/release"
lettre_send="$bench_bin/lettre-send"
delay_proxy="$bench_bin/delay-proxy"
for b in "$smtp_send" "$lettre_send" "$delay_proxy"; do
    [ -x "$b" ] || die "not built: $b"
done

work="$(mktemp -d /tmp/smtp-e2e.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- messages: headers, then lines of 76 characters + CRLF, exactly SIZE bytes
make_message() { # path size
    perl -e '
        my ($path, $size) = @ARGV;
        open(my $f, ">", $path) or die "$path: $!";
        binmode $f;
        my $head = "From: <from\@bench.test>\r\nTo: <to\@bench.test>\r\nSubject: bench\r\n\r\n";
        my $line = ("abcdefghij klmnopqrstuvwxyz " x 3); $line = substr($line, 0, 76) . "\r\n";
        my $left = $size - length($head);
        print $f $head;
        my $block = $line x 1024;
        while ($left >= length($block)) { print $f $block; $left -= length($block); }
        while ($left >= length($line)) { print $f $line; $left -= length($line); }
        print $f ("x" x ($left - 2)) . "\r\n" if $left >= 2;
        print $f "x" if $left == 1;
        close($f);' "$1" "$2"
}
make_message "$work/1k.eml" 1024
for w in $WORKLOADS; do
    case "$w" in
        10m) make_message "$work/big.eml" $((BIG_MIB << 20)) ;;
        huge) make_message "$work/huge.eml" $((HUGE_MIB << 20)) ;;
    esac
done

# --- the server -------------------------------------------------------------
sink_user=()
[ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
smtp-sink "${sink_user[@]}" -c "127.0.0.1:$PORT" 1000 >"$work/sink.out" 2>"$work/sink.err" &
pids+=($!)
"$delay_proxy" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$PORT" \
    --delay-ms "$DELAY_MS" --seconds 3600 2>"$work/proxy.err" &
pids+=($!)
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "smtp-sink did not start: $(cat "$work/sink.err")"

# smtp-sink -c rewrites "sess=.. quit=.. mesg=N" after every message.
sink_messages() {
    tr '\r' '\n' <"$work/sink.out" | grep -o 'mesg=[0-9]*' | tail -n1 | cut -d= -f2 || true
}

# --- workloads --------------------------------------------------------------
# Sets: count conns rcpts file size port
workload() {
    rcpts=1; port=$PORT; conns=1
    case "$1" in
        1k-x1) count=$SMALL1_COUNT; file="$work/1k.eml"; size=1024 ;;
        1k-x8) count=$SMALL8_COUNT; conns=$SMALL8_CONNECTIONS; file="$work/1k.eml"; size=1024 ;;
        10m) count=$BIG_COUNT; file="$work/big.eml"; size=$((BIG_MIB << 20)) ;;
        huge) count=1; file="$work/huge.eml"; size=$((HUGE_MIB << 20)) ;;
        rtt) count=$RTT_COUNT; rcpts=$RTT_RCPTS; port=$PROXY_PORT; file="$work/1k.eml"; size=1024 ;;
        *) die "unknown workload $1" ;;
    esac
}

client_cmd() { # client -> sets cmd=()
    local to=() i
    for ((i = 1; i <= rcpts; i++)); do to+=(--to "rcpt$i@bench.test"); done
    case "$1" in
        smtp-send)
            cmd=("$smtp_send" --server "127.0.0.1:$port" --tls none --from from@bench.test
                "${to[@]}" --data "$file" --repeat "$n" --connections "$conns") ;;
        lettre-send)
            cmd=("$lettre_send" --server "127.0.0.1:$port" --from from@bench.test
                "${to[@]}" --data "$file" --repeat "$n" --connections "$conns") ;;
        smtp-source)
            # -l counts the body only; smtp-source adds its own headers.
            cmd=(smtp-source -d -M localhost -f from@bench.test -t rcpt@bench.test -r "$rcpts"
                -l "$size" -m "$n" -s "$conns" "127.0.0.1:$port") ;;
        *) die "unknown client $1" ;;
    esac
}

results="${RESULTS:-$work/results.tsv}"
: >"$results"
say "workloads: $WORKLOADS; clients: $CLIENTS; runs: $RUNS"
for w in $WORKLOADS; do
    workload "$w"
    for ((run = 1; run <= RUNS; run++)); do
        for c in $CLIENTS; do
            n=$count
            if [ "$c" = lettre-send ]; then
                case "$w" in
                    1k-x1) [ "$LETTRE_COUNT_1K_X1" -lt "$n" ] && n=$LETTRE_COUNT_1K_X1 ;;
                    1k-x8) [ "$LETTRE_COUNT_1K_X8" -lt "$n" ] && n=$LETTRE_COUNT_1K_X8 ;;
                esac
            fi
            client_cmd "$c"
            before=$(sink_messages); before=${before:-0}
            start=$(date +%s%N)
            status=0
            timeout "$RUN_TIMEOUT" /usr/bin/time -f '%M' -o "$work/rss" "${cmd[@]}" \
                >"$work/out" 2>"$work/err" || status=$?
            end=$(date +%s%N)
            sleep 0.2 # let smtp-sink print its counter
            after=$(sink_messages); after=${after:-0}
            rss=$(tail -n1 "$work/rss" 2>/dev/null || echo 0)
            [[ "$rss" =~ ^[0-9]+$ ]] || rss=0
            delivered=$((after - before))
            ok=ok
            if [ "$status" -ne 0 ] || [ "$delivered" -ne "$n" ]; then
                ok="FAIL(exit=$status,delivered=$delivered/$n)"
                say "$w $c run $run: $ok: $(head -c 300 "$work/err")"
            fi
            secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
            printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$run" "$secs" "$rss" "$n" "$size" "$ok" >>"$results"
            say "$w $c run $run: ${secs}s, peak RSS ${rss} KiB, $ok"
        done
    done
done

# --- the table: medians over the runs that passed ---------------------------
echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load average $(cut -d' ' -f1-3 /proc/loadavg); runs: $RUNS; RTT: $((2 * DELAY_MS)) ms"
echo
awk -F'\t' -v clients="$CLIENTS" -v workloads="$WORKLOADS" '
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n == 0) return ""
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(x, y) { return (x == "" || y == "" || y == 0) ? "-" : sprintf("%.3gx", x / y) }
function num(x) { return (x < 1) ? sprintf("%.3g", x) : (x < 10) ? sprintf("%.2f", x) : sprintf("%.0f", x) }
{
    key = $1 SUBSEP $2
    count[key] = $6; size[key] = $7
    if ($8 == "ok") { secs[key] = secs[key] " " $4; rss[key] = rss[key] " " $5 }
    else fails[key]++
}
END {
    print "| workload | client | messages | messages/s | MiB/s | peak RSS (MiB) | msg/s vs smtp-source | msg/s vs lettre |"
    print "|---|---|---:|---:|---:|---:|---:|---:|"
    nw = split(workloads, W, " "); nc = split(clients, C, " ")
    for (i = 1; i <= nw; i++) {
        for (k = 1; k <= nc; k++) {
            key = W[i] SUBSEP C[k]
            s = median(secs[key])
            mps[key] = (s == "" || s == 0) ? "" : count[key] / s
        }
        for (k = 1; k <= nc; k++) {
            key = W[i] SUBSEP C[k]
            if (!(key in count)) continue
            m = mps[key]
            r = median(rss[key])
            note = (key in fails) ? sprintf(" (%d failed)", fails[key]) : ""
            printf "| %s | %s%s | %d | %s | %s | %s | %s | %s |\n", W[i], C[k], note, count[key],
                (m == "") ? "-" : num(m),
                (m == "") ? "-" : num(m * size[key] / 1048576),
                (r == "") ? "-" : sprintf("%.1f", r / 1024),
                (C[k] == "smtp-source") ? "1.00x" : ratio(m, mps[W[i] SUBSEP "smtp-source"]),
                (C[k] == "lettre-send") ? "1.00x" : ratio(m, mps[W[i] SUBSEP "lettre-send"])
        }
    }
}' "$results"
