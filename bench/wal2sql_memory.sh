#!/bin/bash
# bench/wal2sql_memory.sh
#
# Memory of a wal2sql walsender over N create/insert/drop cycles (figure in
# wal2sql/README.md, "Memory"): a logical slot read by pg_recvlogical, then
# N times "CREATE TABLE cK (id int PRIMARY KEY, t text); INSERT ...; DROP
# TABLE cK;", each its own transaction.  Every 1,000 cycles, once the slot
# has caught up, prints the walsender's VmRSS, RssAnon and RssShmem (from
# /proc) and the total of its memory contexts (pg_log_backend_memory_contexts,
# read back from the server log).
#
# usage: bench/wal2sql_memory.sh N SOCKET_DIR PORT SERVER_LOG
# The server (wal_level = logical, wal2sql installed and allowed as an
# output plugin, the extension created in "postgres") runs on this machine;
# PG_BINDIR defaults to pg_config --bindir.
set -eu
N=${1:-10000}; D=$2; PORT=$3; LOG=$4
B=${PG_BINDIR:-$(pg_config --bindir)}
P="$B/psql -h $D -p $PORT -U postgres -X -q -v ON_ERROR_STOP=1"
$P -c "SELECT pg_drop_replication_slot('mem')" >/dev/null 2>&1 || true
$P -c "SELECT 1 FROM pg_create_logical_replication_slot('mem', 'wal2sql')" >/dev/null
$B/pg_recvlogical -h "$D" -p "$PORT" -U postgres -d postgres -S mem --start -f /dev/null -s 1 &
RP=$!
trap 'kill $RP 2>/dev/null || true' EXIT
sleep 2
ws=$($P -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender'")
caught_up() {
	local lsn j
	lsn=$($P -Atc "SELECT pg_current_wal_lsn()")
	for j in $(seq 900); do
		[ "$($P -Atc "SELECT confirmed_flush_lsn >= '$lsn' FROM pg_replication_slots WHERE slot_name = 'mem'")" = t ] && return
		sleep 1
	done
	echo "the slot did not catch up" >&2
	exit 1
}
memory() {
	local ctx
	$P -Atc "SELECT pg_log_backend_memory_contexts($ws)" >/dev/null
	sleep 2
	ctx=$(grep "\[$ws\] LOG:  Grand total" "$LOG" | tail -1 | sed 's/.*Grand total: \([0-9]*\) bytes.*/\1/')
	echo "VmRSS $(awk '/VmRSS/{print $2}' /proc/$ws/status) kB," \
		"RssAnon $(awk '/RssAnon/{print $2}' /proc/$ws/status) kB," \
		"RssShmem $(awk '/RssShmem/{print $2}' /proc/$ws/status) kB," \
		"memory contexts $((${ctx:-0} / 1024)) kB"
}
done_n=0
while [ $done_n -lt "$N" ]; do
	for k in $(seq $((done_n + 1)) $((done_n + 1000))); do
		echo "CREATE TABLE c$k (id int PRIMARY KEY, t text); INSERT INTO c$k VALUES (1, 'x'); DROP TABLE c$k;"
	done | $P >/dev/null
	done_n=$((done_n + 1000))
	caught_up
	echo "after $done_n cycles: $(memory)"
done
kill $RP
wait $RP 2>/dev/null || true
$P -c "SELECT pg_drop_replication_slot('mem')" >/dev/null
