#!/usr/bin/env bash
# End-to-end benchmark (issues 6 and 16): real servers on loopback, the
# same workloads for every client, in one run; a table (medians) and an
# SVG chart of messages/s written to tests/bench/results/.
#
#   bash tests/bench/e2e.sh            # the full run (about 20 minutes)
#   RUNS=1 QUICK=1 bash tests/bench/e2e.sh   # a quick check (small counts)
#
# Servers: Postfix smtp-sink (PIPELINING, no CHUNKING: DATA), and a private
# Postfix smtpd (PIPELINING and CHUNKING; `postfix-server --discard`:
# accepted messages go to Postfix's discard transport, so the queue and
# the disk are not what is measured). Round trips go through `delay-proxy`
# (a fixed delay each way), which also counts them: a client write after
# server bytes starts one.
#
# Workloads (counts overridable by the variables in brackets):
#   1k-x1       SMALL1_COUNT (5000) messages of 1 KiB, one connection, smtp-sink
#   1k-x8       SMALL8_COUNT (20000) messages of 1 KiB, 8 connections, smtp-sink
#   10m         BIG_COUNT (20) messages of BIG_MIB (10) MiB, one connection
#   huge        one message of HUGE_MIB (200) MiB (peak RSS is the point)
#   rtt         RTT_COUNT (30) messages of 1 KiB to RTT_RCPTS (10) recipients,
#               smtp-sink 10 ms away
#   window-10ms WINDOW_COUNT (2000) messages of 1 KiB, one connection, the
#   window-50ms private Postfix (CHUNKING) 10 or 50 ms away: smtp-send with
#               its window of transactions (default 16), smtp-send-w2
#               (--window 2: one round trip per message, the mode before
#               the window) and smtp-source; the last two send
#               WINDOW_SLOW_COUNT (300 at 10 ms, a third of it at 50 ms)
#   pool-0ms    POOL_COUNT (20000) messages of 1 KiB from POOL_TASKS (64)
#   pool-10ms   tokio tasks over 8 connections, smtp-sink at 0 or 10 ms, or
#   pool-bdat-10ms  the private Postfix (CHUNKING) at 10 ms:
#               pool-send (smtp-tokio's Pool), smtp-send --connections 8
#               (blocking threads), lettre-pool-send (lettre's
#               AsyncSmtpTransport pool) and mail-send-send (Stalwart's
#               mail-send, 8 clients shared), each as its documentation
#               configures it (lettre: PoolConfig max_size 8); lettre and
#               mail-send send POOL_SLOW_COUNT (2000)
# lettre's blocking lettre-send waits out a delayed ACK per message (~23
# messages/s per connection), so on the 1 KiB workloads it sends fewer
# (LETTRE_COUNT_1K_X1=500, LETTRE_COUNT_1K_X8=2000). A rate does not depend
# on the count; the table says how many each sent. WORKLOADS and CLIENTS
# select a subset (space-separated names), RUNS (3) the number of runs;
# each figure is the median over the runs.
#
# smtp-source: -d keeps one connection per session (without it, it
# reconnects for every message); -l is the body length, to which it adds a
# few header lines (~150 bytes), so it sends slightly more than the others.
# MiB/s is count x nominal size / wall time for every client. CPU per
# message: the client process's user + system time (bash's `time`) over
# the messages. Peak RSS: its maximum resident set size. Every run is
# checked by its exit status and, on smtp-sink, against the sink's own
# message counter.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="$PATH:/usr/sbin:/usr/local/sbin"

RUNS=${RUNS:-3}
if [ -n "${QUICK:-}" ]; then
    : "${SMALL1_COUNT:=500}" "${SMALL8_COUNT:=2000}" "${BIG_COUNT:=2}" "${HUGE_MIB:=20}"
    : "${RTT_COUNT:=5}" "${WINDOW_COUNT:=200}" "${WINDOW_SLOW_COUNT:=30}"
    : "${POOL_COUNT:=2000}" "${POOL_SLOW_COUNT:=200}" "${LETTRE_COUNT_1K_X1:=50}"
    : "${LETTRE_COUNT_1K_X8:=200}"
fi
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
WINDOW_COUNT=${WINDOW_COUNT:-2000}
WINDOW_SLOW_COUNT=${WINDOW_SLOW_COUNT:-300}
POOL_COUNT=${POOL_COUNT:-20000}
POOL_SLOW_COUNT=${POOL_SLOW_COUNT:-2000}
POOL_TASKS=${POOL_TASKS:-64}
POOL_CONNECTIONS=${POOL_CONNECTIONS:-8}
ALL_WORKLOADS="1k-x1 1k-x8 10m huge rtt window-10ms window-50ms pool-0ms pool-10ms pool-bdat-10ms"
WORKLOADS=${WORKLOADS:-$ALL_WORKLOADS}
CLIENTS=${CLIENTS:-}
PORT=${PORT:-22525}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
TIMEFORMAT='%3U %3S'
RESULTS_DIR=${RESULTS_DIR:-$(cd "$(dirname "$0")" && pwd)/results}
NAME=${NAME:-e2e}

say() { printf 'e2e: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v smtp-sink >/dev/null || die "smtp-sink missing: run bash tests/setup.sh (installs postfix)"
command -v smtp-source >/dev/null || die "smtp-source missing: run bash tests/setup.sh (installs postfix)"
if [ ! -x /usr/bin/time ]; then
    [ "$(id -u)" -eq 0 ] || die "/usr/bin/time missing: apt-get install time"
    say "installing Debian's time (for peak RSS and CPU)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

# --- builds (release, all the same way) -------------------------------------
say "building smtp-send and the bench binaries (release)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p smtp-cli
cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bins
smtp_send="${CARGO_TARGET_DIR:-$root/target}/release/smtp-send"
bench_bin="${CARGO_TARGET_DIR:-$here/target}/release"
for b in "$smtp_send" "$bench_bin"/{lettre-send,delay-proxy,postfix-server,pool-send,lettre-pool-send,mail-send-send,e2e-chart}; do
    [ -x "$b" ] || die "not built: $b"
done

work="$(mktemp -d /tmp/smtp-e2e.XXXXXX)"
pids=()
cleanup() {
    exec 7>&- 2>/dev/null || true # postfix-server stops when its stdin closes
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

# --- the servers --------------------------------------------------------------
wait_port() { # port what
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$2 did not start"
}
sink_user=()
[ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
smtp-sink "${sink_user[@]}" -c "127.0.0.1:$PORT" 1000 >"$work/sink.out" 2>"$work/sink.err" &
pids+=($!)
wait_port "$PORT" "smtp-sink ($(cat "$work/sink.err"))"

postfix_port=
case " $WORKLOADS " in
    *" window-"* | *" pool-bdat-"*)
        mkfifo "$work/postfix.ctl"
        "$bench_bin/postfix-server" --discard <"$work/postfix.ctl" >"$work/postfix.addr" 2>"$work/postfix.err" &
        pids+=($!)
        exec 7>"$work/postfix.ctl"
        for _ in $(seq 300); do [ -s "$work/postfix.addr" ] && break; sleep 0.1; done
        postfix_port=$(cut -d: -f2 <"$work/postfix.addr")
        [ -n "$postfix_port" ] || die "postfix-server did not start: $(cat "$work/postfix.err")"
        ;;
esac

# One delay proxy per (server, RTT), each counting round trips into a file.
next_proxy_port=$((PORT + 1))
proxy() { # upstream-port rtt-ms -> sets proxy_port, proxy_count
    local key="$1-$2"
    local var="proxy_${key//-/_}"
    if [ -z "${!var:-}" ]; then
        local p=$next_proxy_port
        next_proxy_port=$((next_proxy_port + 1))
        "$bench_bin/delay-proxy" --listen "127.0.0.1:$p" --upstream "127.0.0.1:$1" \
            --delay-ms $(($2 / 2)) --seconds 7200 --count-file "$work/trips-$key" 2>"$work/proxy-$key.err" &
        pids+=($!)
        wait_port "$p" "delay-proxy"
        printf -v "$var" '%s' "$p"
    fi
    proxy_port=${!var}
    proxy_count="$work/trips-$key"
}

# smtp-sink -c rewrites "sess=.. quit=.. mesg=N" after every message.
sink_messages() {
    tr '\r' '\n' <"$work/sink.out" | grep -o 'mesg=[0-9]*' | tail -n1 | cut -d= -f2 || true
}
trips() { cat "$proxy_count" 2>/dev/null || echo 0; }

# --- workloads ----------------------------------------------------------------
# Sets: count conns rcpts file size port clients sink (checked by the
# sink's counter) rtt (ms, 0: direct) domain
workload() {
    rcpts=1; port=$PORT; conns=1; rtt=0; sink=1; domain=bench.test
    file="$work/1k.eml"; size=1024
    clients="smtp-send lettre-send smtp-source"
    case "$1" in
        1k-x1) count=$SMALL1_COUNT ;;
        1k-x8) count=$SMALL8_COUNT; conns=$SMALL8_CONNECTIONS ;;
        10m) count=$BIG_COUNT; file="$work/big.eml"; size=$((BIG_MIB << 20)) ;;
        huge) count=1; file="$work/huge.eml"; size=$((HUGE_MIB << 20)) ;;
        rtt) count=$RTT_COUNT; rcpts=$RTT_RCPTS; rtt=10 ;;
        window-*)
            count=$WINDOW_COUNT; rtt=${1#window-}; rtt=${rtt%ms}
            port=$postfix_port; sink=0; domain=example.org
            clients="smtp-send smtp-send-w2 smtp-source" ;;
        pool-*)
            count=$POOL_COUNT; conns=$POOL_CONNECTIONS; rtt=${1##*-}; rtt=${rtt%ms}
            clients="pool-send smtp-send lettre-pool-send mail-send-send"
            if [[ "$1" == pool-bdat-* ]]; then
                port=$postfix_port; sink=0; domain=example.org
            fi ;;
        *) die "unknown workload $1" ;;
    esac
    if [ "$rtt" -gt 0 ]; then
        proxy "$port" "$rtt"
        port=$proxy_port
    else
        proxy_count=
    fi
}

# How many messages client $1 sends in workload $2 (slow ones send fewer).
count_for() {
    local n=$count
    case "$1:$2" in
        lettre-send:1k-x1) n=$LETTRE_COUNT_1K_X1 ;;
        lettre-send:1k-x8) n=$LETTRE_COUNT_1K_X8 ;;
        smtp-send-w2:window-* | smtp-source:window-*)
            n=$WINDOW_SLOW_COUNT
            [ "$rtt" -ge 50 ] && n=$((WINDOW_SLOW_COUNT / 3)) ;;
        lettre-pool-send:pool-* | mail-send-send:pool-*) n=$POOL_SLOW_COUNT ;;
    esac
    [ "$n" -lt "$count" ] && echo "$n" || echo "$count"
}

client_cmd() { # client -> sets cmd=()
    local to=() i
    for ((i = 1; i <= rcpts; i++)); do to+=(--to "rcpt$i@$domain"); done
    local common=(--server "127.0.0.1:$port" --from "from@$domain" "${to[@]}" --data "$file" --repeat "$n" --connections "$conns")
    case "$1" in
        smtp-send) cmd=("$smtp_send" --tls none "${common[@]}") ;;
        smtp-send-w2) cmd=("$smtp_send" --tls none --window 2 "${common[@]}") ;;
        lettre-send) cmd=("$bench_bin/lettre-send" "${common[@]}") ;;
        pool-send | lettre-pool-send | mail-send-send)
            cmd=("$bench_bin/$1" "${common[@]}" --tasks "$POOL_TASKS") ;;
        smtp-source)
            # -l counts the body only; smtp-source adds its own headers.
            cmd=(smtp-source -d -M localhost -f "from@$domain" -t "rcpt@$domain" -r "$rcpts"
                -l "$size" -m "$n" -s "$conns" "127.0.0.1:$port") ;;
        *) die "unknown client $1" ;;
    esac
}

mkdir -p "$RESULTS_DIR"
runs="$RESULTS_DIR/$NAME-runs.tsv"
printf 'workload\tclient\trun\tseconds\trss_kib\tmessages\tsize\tstatus\tcpu_seconds\tround_trips\n' >"$runs"
say "workloads: $WORKLOADS; runs: $RUNS"
for w in $WORKLOADS; do
    workload "$w"
    for ((run = 1; run <= RUNS; run++)); do
        for c in $clients; do
            if [ -n "$CLIENTS" ] && [[ " $CLIENTS " != *" $c "* ]]; then continue; fi
            n=$(count_for "$c" "$w")
            client_cmd "$c"
            before=$(sink_messages); before=${before:-0}
            trips_before=0; [ -n "$proxy_count" ] && trips_before=$(trips)
            start=$(date +%s%N)
            status=0
            # bash's `time` reports the CPU of every process waited for, to
            # the millisecond (GNU time's %U has 10 ms steps); GNU time gives
            # the client's peak RSS.
            { time timeout "$RUN_TIMEOUT" /usr/bin/time -f '%M' -o "$work/time" "${cmd[@]}" \
                >"$work/out" 2>"$work/err"; } 2>"$work/cpu" || status=$?
            end=$(date +%s%N)
            sleep 0.2 # let smtp-sink print its counter, the proxy write its count
            after=$(sink_messages); after=${after:-0}
            rss=$(tail -n1 "$work/time" 2>/dev/null || echo 0)
            [[ "$rss" =~ ^[0-9]+$ ]] || rss=0
            cpu=$(awk '{ printf "%.3f", $1 + $2 }' "$work/cpu" 2>/dev/null || echo 0)
            round_trips=-
            [ -n "$proxy_count" ] && round_trips=$(($(trips) - trips_before))
            delivered=$((after - before))
            ok=ok
            if [ "$status" -ne 0 ] || { [ "$sink" = 1 ] && [ "$delivered" -ne "$n" ]; }; then
                ok="FAIL(exit=$status,delivered=$delivered/$n)"
                say "$w $c run $run: $ok: $(head -c 300 "$work/err")"
            fi
            secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
            printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$run" "$secs" "$rss" "$n" "$size" "$ok" "$cpu" "$round_trips" >>"$runs"
            say "$w $c run $run: ${n} in ${secs}s, CPU ${cpu}s, round trips $round_trips, peak RSS ${rss} KiB, $ok"
        done
    done
done

# --- the table: medians over the runs that passed -----------------------------
summary="$RESULTS_DIR/$NAME.tsv"
table="$RESULTS_DIR/$NAME.md"
{
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), load average $(cut -d' ' -f1-3 /proc/loadavg); runs: $RUNS (medians)"
    echo
    awk -F'\t' -v workloads="$WORKLOADS" -v summary="$summary" '
function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n == 0) return ""
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(x, y) { return (x == "" || y == "" || y == 0) ? "-" : sprintf("%.3gx", x / y) }
function num(x) { return (x < 1) ? sprintf("%.3g", x) : (x < 10) ? sprintf("%.2f", x) : sprintf("%.0f", x) }
NR == 1 { next }
{
    key = $1 SUBSEP $2
    if (!(key in count)) { order[$1] = order[$1] " " $2 }
    count[key] = $6; size[key] = $7
    if ($8 == "ok") {
        secs[key] = secs[key] " " $4; rss[key] = rss[key] " " $5
        cpu[key] = cpu[key] " " ($9 / $6)
        if ($10 != "-") trips[key] = trips[key] " " ($10 / $6)
    } else fails[key]++
}
END {
    print "| workload | client | messages | messages/s | MiB/s | client CPU per message | round trips per message | peak RSS (MiB) | msg/s vs smtp-source | msg/s vs lettre |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    print "workload\tclient\tmessages\tmessages_per_s\tmib_per_s\tcpu_us_per_message\tround_trips_per_message\tpeak_rss_mib" > summary
    nw = split(workloads, W, " ")
    for (i = 1; i <= nw; i++) {
        nc = split(order[W[i]], C, " ")
        source = ""; lettre = ""
        for (k = 1; k <= nc; k++) {
            key = W[i] SUBSEP C[k]
            s = median(secs[key])
            mps[key] = (s == "" || s == 0) ? "" : count[key] / s
            if (C[k] == "smtp-source") source = mps[key]
            if (C[k] ~ /^lettre/) lettre = mps[key]
        }
        for (k = 1; k <= nc; k++) {
            key = W[i] SUBSEP C[k]
            m = mps[key]
            r = median(rss[key]); c = median(cpu[key]); t = median(trips[key])
            note = (key in fails) ? sprintf(" (%d failed)", fails[key]) : ""
            printf "| %s | %s%s | %d | %s | %s | %s | %s | %s | %s | %s |\n", W[i], C[k], note, count[key],
                (m == "") ? "-" : num(m),
                (m == "") ? "-" : num(m * size[key] / 1048576),
                (c == "") ? "-" : ((c < 0.001) ? sprintf("%.0f µs", c * 1e6) : sprintf("%.3g ms", c * 1e3)),
                (t == "") ? "-" : sprintf("%.3g", t),
                (r == "") ? "-" : sprintf("%.1f", r / 1024),
                (C[k] == "smtp-source") ? "1.00x" : ratio(m, source),
                (C[k] ~ /^lettre/) ? "1.00x" : ratio(m, lettre)
            printf "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", W[i], C[k], count[key], m,
                (m == "") ? "" : m * size[key] / 1048576, (c == "") ? "" : c * 1e6, t,
                (r == "") ? "" : r / 1024 > summary
        }
    }
}' "$runs"
} | tee "$table"
"$bench_bin/e2e-chart" "$summary" >"$RESULTS_DIR/$NAME.svg"
say "wrote $table, $summary, $runs and $RESULTS_DIR/$NAME.svg"
