#!/bin/sh
# Open MPI's launch agent in place of ssh, for two "hosts" made of network
# namespaces (scripts/test_mpi.sh, scripts/bench_mpi.sh): the host whose
# address ends in .1 is namespace nbA, .2 is nbB; the command runs there.
host=$1
shift
case $host in
  *.1) ns=nbA ;;
  *.2) ns=nbB ;;
  *) echo "netns_agent: no namespace holds $host" >&2; exit 1 ;;
esac
exec ip netns exec "$ns" sh -c "$*"
