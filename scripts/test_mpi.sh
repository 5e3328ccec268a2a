#!/usr/bin/env bash
# Data-parallel training over MPI, checked across real processes:
#   1. mpirun -np 2 with --reduce exact gives one process's weights bit for bit,
#      and --reduce sum (batch 300: two shards per rank) repeats itself bit for bit;
#      sending gradients during backward (--overlap) changes no bit of either;
#   2. a resume under mpirun continues exactly;
#   3. ranks started with different settings are refused, naming the setting;
#   4. a rank killed mid-run ends the job quickly, and its checkpoint resumes
#      and trains one epoch further; a rank that hangs (stopped) is noticed by
#      the others' collective timeout, which ends the job;
#   5. the same across two network namespaces joined by a veth pair (TCP only),
#      when this machine may make them (root and iproute2).
# Usage: scripts/test_mpi.sh NABLA_BINARY_BUILT_WITH_MPI
set -euo pipefail
nabla=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"; ip netns del nbA 2>/dev/null || true; ip netns del nbB 2>/dev/null || true' EXIT
cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mpi=(mpirun -np 2 --oversubscribe)
run=(train --hidden 64 --epochs 2 --seed 5 --quiet)
grep -m1 'model name' /proc/cpuinfo || true
grep -m1 -E 'cpu family' /proc/cpuinfo || true
grep -m1 -E '^model\s' /proc/cpuinfo || true
fail() { echo "FAIL: $*"; exit 1; }
# The process of rank $1 of the job running now.
rank_pid() {
    for p in $(pgrep -x nabla); do
        # (a process pgrep saw may be gone by now)
        if { tr '\0' '\n' < "/proc/$p/environ"; } 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$p"; fi
    done
}

echo "== 1. exact and sum reductions"
"$nabla" "${run[@]}" --threads 2 --out one.st
"${mpi[@]}" "$nabla" "${run[@]}" --threads 1 --reduce exact --out exact.st
cmp -s one.st exact.st || fail "--reduce exact differs from one process"
"${mpi[@]}" "$nabla" "${run[@]}" --threads 1 --reduce exact --overlap --out exact-overlap.st
cmp -s one.st exact-overlap.st || fail "--reduce exact --overlap differs from one process"
echo "exact: bit-identical to one process, with and without --overlap"
"${mpi[@]}" "$nabla" "${run[@]}" --threads 1 --out sum100.st
"${mpi[@]}" "$nabla" "${run[@]}" --threads 1 --overlap --out sum100-overlap.st
cmp -s sum100.st sum100-overlap.st || fail "--overlap changed the weights of --reduce sum"
echo "sum at batch 100: --overlap changes no bit"
"${mpi[@]}" "$nabla" "${run[@]}" --threads 1 --batch-size 300 --out sum1.st
"${mpi[@]}" "$nabla" "${run[@]}" --threads 1 --batch-size 300 --out sum2.st
cmp -s sum1.st sum2.st || fail "two runs of --reduce sum differ"
"$nabla" "${run[@]}" --threads 2 --batch-size 300 --out one300.st
python3 - one300.st sum1.st <<'EOF'
import json, struct, sys
def tensors(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        raw = b[8 + n + s:8 + n + e]
        out[k] = struct.unpack('<%df' % (len(raw) // 4), raw)
    return out
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
worst = max(abs(x - y) / max(abs(x), 1e-2) for k in a for x, y in zip(a[k], b[k]))
print(f"sum at batch 300: repeatable; max relative difference from one process {worst:.2e}")
assert worst < 1e-3, worst
EOF

echo "== 2. resume under mpirun"
"${mpi[@]}" "$nabla" train --hidden 64 --epochs 1 --seed 5 --quiet --threads 1 --out r.st
"${mpi[@]}" "$nabla" train --hidden 64 --epochs 2 --seed 5 --quiet --threads 1 --out r.st --resume r.st.ckpt
cmp -s r.st exact.st || fail "a resumed run differs from a straight one"
echo "resume: bit-identical to a straight run"

echo "== 3. ranks that disagree"
other=(train --hidden 64 --epochs 2 --seed 6 --quiet)
if mpirun -np 1 "$nabla" "${run[@]}" --threads 1 --out d.st : -np 1 "$nabla" "${other[@]}" --threads 1 --out d.st > d.log 2>&1; then
    fail "ranks with different seeds trained"
fi
grep -q "disagree on the seed" d.log || { cat d.log; fail "the seed was not named"; }
grep -m1 "disagree" d.log

echo "== 4. a rank killed mid-run"
"${mpi[@]}" "$nabla" train --hidden 512,256 --epochs 40 --seed 5 --quiet --threads 1 --out k.st > k.log 2>&1 &
launcher=$!
for _ in $(seq 100); do [ -f k.st.ckpt ] && break; sleep 0.2; done
[ -f k.st.ckpt ] || fail "no checkpoint appeared"
victim=$(rank_pid 1)
[ -n "$victim" ] || fail "rank 1 not found"
start=$(date +%s)
kill -9 "$victim"
if wait "$launcher"; then fail "the job succeeded after a rank was killed"; fi
took=$(( $(date +%s) - start ))
[ "$took" -le 30 ] || fail "the job took ${took} s to end"
grep -q "rank 0: ended by the MPI launcher" k.log || { cat k.log; fail "rank 0 said nothing"; }
echo "killed rank 1: the job ended in ${took} s; $(grep -m1 'rank 0:' k.log)"
# The epochs a checkpoint holds, from the run state in its metadata.
epochs_done() {
    python3 - "$1" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
print(json.loads(json.loads(b[8:8 + n])['__metadata__']['checkpoint'])['epochs_done'])
EOF
}
done_before=$(epochs_done k.st.ckpt)
"${mpi[@]}" "$nabla" train --hidden 512,256 --epochs $((done_before + 1)) --seed 5 --quiet --threads 1 --out k.st --resume k.st.ckpt > resume.log 2>&1 \
    || { cat resume.log; fail "the checkpoint left by the killed run does not resume"; }
done_after=$(epochs_done k.st.ckpt)
[ "$done_after" -eq $((done_before + 1)) ] || fail "the resumed run ended at epoch $done_after, not $((done_before + 1))"
echo "its checkpoint (epoch $done_before) resumes and trains to epoch $done_after"
rm -f h.st.ckpt
"${mpi[@]}" "$nabla" train --hidden 512,256 --epochs 40 --seed 5 --quiet --threads 1 --collective-timeout 3 --out h.st > h.log 2>&1 &
launcher=$!
for _ in $(seq 100); do [ -f h.st.ckpt ] && break; sleep 0.2; done
[ -f h.st.ckpt ] || fail "no checkpoint appeared"
victim=$(rank_pid 1)
[ -n "$victim" ] || fail "rank 1 not found"
start=$(date +%s)
kill -STOP "$victim"
if wait "$launcher"; then fail "the job succeeded while a rank hung"; fi
took=$(( $(date +%s) - start ))
kill -KILL "$victim" 2> /dev/null || true
[ "$took" -le 30 ] || fail "the job took ${took} s to end after a rank hung"
grep -q "rank 0: no answer from the other ranks for 3 s" h.log || { cat h.log; fail "rank 0 did not name the hang"; }
echo "stopped rank 1: the job ended in ${took} s; $(grep -m1 'rank 0: no answer' h.log)"

echo "== 5. across two network namespaces"
if [ "$(id -u)" != 0 ] || ! command -v ip > /dev/null || ! ip netns add nbA 2> /dev/null; then
    echo "skipped: needs root and iproute2"
    exit 0
fi
ip netns add nbB
ip link add vnbA type veth peer name vnbB
ip link set vnbA netns nbA
ip link set vnbB netns nbB
ip -n nbA addr add 10.77.0.1/24 dev vnbA
ip -n nbB addr add 10.77.0.2/24 dev vnbB
for ns in nbA nbB; do ip -n $ns link set lo up; done
ip -n nbA link set vnbA up
ip -n nbB link set vnbB up
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > hosts
# --bind-to none: both namespaces share this machine's cores, and each host's
# launcher would otherwise bind its rank to the same first core.
ip netns exec nbA mpirun -np 2 --hostfile hosts --bind-to none --mca plm_rsh_agent "$here/netns_agent.sh" \
    --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
    --mca btl_tcp_sndbuf 0 --mca btl_tcp_rcvbuf 0 \
    -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM \
    "$nabla" "${run[@]}" --threads 1 --reduce exact --out "$work/ns.st"
cmp -s one.st ns.st || fail "across namespaces, --reduce exact differs from one process"
rx=$(ip netns exec nbB cat /sys/class/net/vnbB/statistics/rx_bytes)
echo "namespaces: bit-identical to one process; ${rx} bytes crossed the veth into the second host"
[ "$rx" -gt 1000000 ] || fail "too little traffic crossed the veth"
echo "all MPI checks passed"
