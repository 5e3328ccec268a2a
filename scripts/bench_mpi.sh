#!/usr/bin/env bash
# Throughput of data-parallel training: one process with 2 threads against
# `mpirun -np 2` with 1 thread per rank, gradients sent after backward and
# with --overlap, side by side in each round (median samples/s of the epochs),
# after the time of one bare allreduce over the same link.
#   host      both ranks on this host (shared memory);
#   veth      one rank in each of two network namespaces joined by a veth pair;
#   delay=MS  the same joined by scripts/delayed_link.py, MS each way (a slow
#             network where `tc netem` is not available).
# Usage: scripts/bench_mpi.sh NABLA_BUILT_WITH_MPI host|veth|delay=MS ROUNDS [TRAIN ARGS...]
# e.g.   scripts/bench_mpi.sh target/release/nabla host 3 --hidden 512,256 --epochs 3
set -euo pipefail
nabla=$(realpath "$1")
mode=$2
rounds=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
link=""
cleanup() {
    [ -n "$link" ] && kill "$link" 2> /dev/null || true
    ip netns del nbA 2> /dev/null || true
    ip netns del nbB 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
grep -m1 'model name' /proc/cpuinfo || true
grep -m1 -E 'cpu family' /proc/cpuinfo || true
grep -m1 -E '^model\s' /proc/cpuinfo || true
echo "mode $mode; nabla train $*"

mpi=(mpirun -np 2 --oversubscribe)
if [ "$mode" != host ]; then
    [ "$(id -u)" = 0 ] || { echo "$mode needs root (network namespaces)"; exit 1; }
    ip netns add nbA
    ip netns add nbB
    for ns in nbA nbB; do ip -n $ns link set lo up; done
    case $mode in
        veth)
            ip link add vnbA type veth peer name vnbB
            ip link set vnbA netns nbA
            ip link set vnbB netns nbB
            ip -n nbA addr add 10.78.0.1/24 dev vnbA
            ip -n nbB addr add 10.78.0.2/24 dev vnbB
            ip -n nbA link set vnbA up
            ip -n nbB link set vnbB up
            ;;
        delay=*)
            # Real-time priority: the forwarder must not wait behind the ranks
            # for a core, or its delay grows with their load.
            chrt -f 50 python3 "$here/delayed_link.py" nbA nbB "${mode#delay=}" > "$work/link.log" 2>&1 &
            link=$!
            for _ in $(seq 50); do grep -q ready "$work/link.log" && break; sleep 0.1; done
            grep -q ready "$work/link.log" || { cat "$work/link.log"; exit 1; }
            ip -n nbA addr add 10.78.0.1 peer 10.78.0.2 dev dlA
            ip -n nbB addr add 10.78.0.2 peer 10.78.0.1 dev dlB
            ip -n nbA link set dlA mtu 65000 up
            ip -n nbB link set dlB mtu 65000 up
            ;;
        *)
            echo "unknown mode $mode: host, veth or delay=MS"
            exit 1
            ;;
    esac
    printf '10.78.0.1 slots=1\n10.78.0.2 slots=1\n' > "$work/hosts"
    # --bind-to none: the two "hosts" share this machine's cores, and each
    # would otherwise bind its rank to the same first core.
    mpi=(ip netns exec nbA mpirun -np 2 --hostfile "$work/hosts" --bind-to none
        --mca plm_rsh_agent "$here/netns_agent.sh" --mca btl tcp,self
        --mca btl_tcp_if_include 10.78.0.0/24 --mca oob_tcp_if_include 10.78.0.0/24
        --mca btl_tcp_sndbuf 0 --mca btl_tcp_rcvbuf 0
        -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM)
fi

# The link's own cost: one allreduce at the sizes of gradient buckets.
if command -v mpicc > /dev/null; then
    mpicc -O2 -o "$work/allreduce_latency" "$here/allreduce_latency.c"
    "${mpi[@]}" "$work/allreduce_latency"
fi

# The median samples/s of the epochs of a run's --json summary.
rate() {
    python3 -c '
import json, statistics, sys
h = json.load(open(sys.argv[1]))["history"]
print(round(statistics.median(e["samples_per_second"] for e in h)))' "$1"
}
for r in $(seq "$rounds"); do
    "$nabla" train "$@" --threads 2 --json --out "$work/one.st" > "$work/one.json"
    "${mpi[@]}" "$nabla" train "$@" --threads 1 --json --out "$work/after.st" > "$work/after.json"
    "${mpi[@]}" "$nabla" train "$@" --threads 1 --json --overlap --out "$work/during.st" > "$work/during.json"
    one=$(rate "$work/one.json")
    after=$(rate "$work/after.json")
    during=$(rate "$work/during.json")
    same=$(cmp -s "$work/after.st" "$work/during.st" && echo same || echo DIFFERENT)
    python3 -c '
import sys
r, one, after, during, same = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
print(f"round {r}: one process {one:,}/s; -np 2 {after:,}/s ({after / one:.2f}x); "
      f"-np 2 --overlap {during:,}/s ({during / one:.2f}x); weights {same}")' \
        "$r" "$one" "$after" "$during" "$same"
done
