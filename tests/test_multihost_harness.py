"""Proves the multi-host harness (tests/multihost.py): ssh between namespaces, horovodrun (Gloo)
and mpirun (Open MPI) placing one rank on each host, cutting a link, and rate limits.

Every process runs under a timeout; the cluster's teardown kills whatever is left in its
namespaces. The two launcher tests each start two TensorFlow processes (about 10 s).
"""
import pathlib
import re
import subprocess
import sys
import time

import multihost
import pytest

PY = sys.executable
# One TF thread per rank: two "hosts" share this machine's cores.
TF_ENV = dict(TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1",
              TF_NUM_INTEROP_THREADS="1", PYTHONUNBUFFERED="1")

# Each rank prints where it runs (its eth0 address and network namespace) and the allreduce.
RANK_PROGRAM = r"""
import fcntl, os, socket, struct
import horovod.tensorflow as hvd
import tensorflow as tf
hvd.init()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ifreq = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", b"eth0"))  # SIOCGIFADDR
addr = socket.inet_ntoa(ifreq[20:24])
total = hvd.allreduce(tf.constant(float(hvd.rank() + 1)), op=hvd.Sum)
print(f"RANK {hvd.rank()} SIZE {hvd.size()} ADDR {addr} NETNS {os.readlink('/proc/self/ns/net')}"
      f" SUM {float(total)}", flush=True)
"""
RANK_LINE = re.compile(r"RANK (\d+) SIZE (\d+) ADDR (\S+) NETNS (\S+) SUM (\S+)")

# Receives connections on (address, port) and answers each with the number of bytes it read.
SINK = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
print("ready", flush=True)
for _ in range(int(sys.argv[3])):
  c, _ = s.accept()
  c.settimeout(30)
  n = 0
  while (b := c.recv(1 << 16)):
    n += len(b)
  c.sendall(str(n).encode())
  c.close()
"""
# Sends argv[3] bytes to the sink and prints the seconds until the sink confirmed them.
SEND = r"""
import socket, sys, time
data = b"x" * int(sys.argv[3])
t = time.perf_counter()
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
assert int(c.recv(64)) == len(data)
print(time.perf_counter() - t)
"""


def _skip_unless_available():
  reason = multihost.available()
  if reason:
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster():
  _skip_unless_available()
  with multihost.Cluster(num_hosts=2) as c:
    yield c


def _check(proc: subprocess.CompletedProcess) -> str:
  output = proc.stdout + proc.stderr
  assert proc.returncode == 0, f"{proc.args}\nexited {proc.returncode}:\n{output[-6000:]}"
  return output


def _ranks(output: str) -> dict:
  """rank -> (size, address, netns, sum) from RANK_PROGRAM's lines."""
  return {int(m[1]): (int(m[2]), m[3], m[4], float(m[5])) for m in RANK_LINE.finditer(output)}


def _assert_one_rank_per_host(cluster, output: str) -> None:
  assert _ranks(output) == {
    0: (2, cluster.hosts[0], cluster.netns_id(0), 3.0),
    1: (2, cluster.hosts[1], cluster.netns_id(1), 3.0),
  }, output[-6000:]


def test_ssh_from_host0_runs_on_host1(cluster):
  here = _check(cluster.run_on(0, ["readlink", "/proc/self/ns/net"], timeout=10))
  there = _check(cluster.run_on(
    0, cluster.ssh_command(1, "readlink /proc/self/ns/net; ip -4 -o addr show dev eth0"),
    timeout=20))
  assert here.split()[0] == cluster.netns_id(0)
  assert there.split()[0] == cluster.netns_id(1) != cluster.netns_id(0)
  assert f"inet {cluster.hosts[1]}/24" in there


def test_hosts_route_only_their_subnet(cluster):
  """Nothing can leave the bridge: each host's only route is the cluster's /24 on eth0."""
  for i in range(cluster.num_hosts):
    routes = _check(cluster.run_on(i, ["ip", "-4", "route", "show", "table", "all"], timeout=10))
    routes = [r.strip() for r in routes.splitlines() if not r.startswith(("local ", "broadcast "))]
    assert routes == [f"{cluster.subnet} dev eth0 proto kernel scope link src {cluster.hosts[i]}"]
    # No IPv6 on the hosts' links either.
    assert _check(cluster.run_on(i, ["ip", "-6", "-o", "addr"], timeout=10)).strip() == ""


def test_horovodrun_gloo_places_a_rank_on_each_host(cluster):
  h0, h1 = cluster.hosts
  # Every host's veth end is named eth0, as on a cluster, so horovodrun's --network-interface
  # (which sets HOROVOD_GLOO_IFACE for the ranks and picks the rendezvous address on the
  # launcher) names the same interface everywhere; leaving it out also works (horovodrun then
  # probes the hosts' interfaces over ssh and finds eth0). --disable-cache: horovodrun would
  # otherwise cache "ssh works" per host list in ~/.horovod for 60 minutes.
  args = ["horovodrun", "-np", "2", "-H", f"{h0}:1,{h1}:1", "--gloo",
          "--network-interface", multihost.IFACE, "--disable-cache", "--start-timeout", "30",
          PY, "-c", RANK_PROGRAM]
  output = _check(cluster.run_on(0, args, timeout=180, env=cluster.env(**TF_ENV)))
  _assert_one_rank_per_host(cluster, output)


def test_mpirun_places_a_rank_on_each_host(cluster):
  h0, h1 = cluster.hosts
  # cluster.env() routes Open MPI's ssh through the wrapper (OMPI_MCA_plm_rsh_agent), allows
  # root, and keeps oob and the TCP BTL on the cluster's /24. --bind-to none: each orted would
  # otherwise pin its rank to core 0 of this same machine.
  args = ["mpirun", "-np", "2", "-H", f"{h0}:1,{h1}:1", "-mca", "pml", "ob1",
          "-mca", "btl", "tcp,self", "--bind-to", "none",
          *[arg for name in ("PATH", *TF_ENV) for arg in ("-x", name)], PY, "-c", RANK_PROGRAM]
  output = _check(cluster.run_on(0, args, timeout=180, env=cluster.env(**TF_ENV)))
  _assert_one_rank_per_host(cluster, output)


def test_cut_makes_ssh_fail_and_restore_heals(cluster):
  cluster.cut(1)
  try:
    start = time.monotonic()
    proc = cluster.run_on(0, cluster.ssh_command(1, "true"), timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode == 255, proc
    assert elapsed < multihost.SSH_CONNECT_TIMEOUT + 3, elapsed
  finally:
    cluster.restore(1)
  deadline = time.monotonic() + 10
  while (proc := cluster.run_on(0, cluster.ssh_command(1, "true"), timeout=20)).returncode:
    assert time.monotonic() < deadline, proc
    time.sleep(0.2)


def test_cut_ends_an_open_session(cluster):
  """ServerAliveInterval/CountMax make an ssh session notice a cut link within seconds."""
  session = subprocess.Popen(cluster.command_on(0, cluster.ssh_command(1, "echo up; sleep 60")),
                             env=cluster.env(), stdout=subprocess.PIPE, text=True)
  try:
    assert session.stdout.readline().strip() == "up"
    cluster.cut(1)
    start = time.monotonic()
    assert session.wait(timeout=20) == 255
    assert time.monotonic() - start < 12
  finally:
    session.kill()
    session.wait(timeout=10)
    cluster.restore(1)


def _transfer_seconds(cluster, nbytes: int, port: int) -> float:
  proc = cluster.run_on(0, [PY, "-c", SEND, cluster.hosts[1], str(port), str(nbytes)],
                        timeout=30)
  return float(_check(proc).split()[0])


def test_limit_rate_slows_transfers(cluster):
  nbytes, port, rate_bits = 4_000_000, 5201, 100e6
  sink = subprocess.Popen(cluster.command_on(1, [PY, "-c", SINK, cluster.hosts[1], port, 3]),
                          stdout=subprocess.PIPE, text=True)
  try:
    assert sink.stdout.readline().strip() == "ready"
    _transfer_seconds(cluster, nbytes, port)  # warm-up (ARP, first connection)
    free = _transfer_seconds(cluster, nbytes, port)
    cluster.limit_rate("100mbit")
    try:
      limited = _transfer_seconds(cluster, nbytes, port)
    finally:
      cluster.clear_rate()
    sink.wait(timeout=10)
  finally:
    sink.kill()
    sink.wait(timeout=10)
  expected = nbytes * 8 / rate_bits  # 0.32 s
  assert limited >= 2 * free, (free, limited)
  assert 0.6 * expected < limited < 3 * expected, (free, limited, expected)


def test_close_removes_everything():
  _skip_unless_available()
  with pytest.raises(RuntimeError, match="boom"), multihost.Cluster(num_hosts=1) as c:
    pids = [p.pid for p in c._sshds]
    assert pids and all(pathlib.Path(f"/proc/{pid}").exists() for pid in pids)
    raise RuntimeError("boom")
  c.close()  # idempotent
  assert not pathlib.Path(f"/run/netns/{c.namespaces[0]}").exists()  # what `ip netns` lists
  for link in [c.bridge, *c.veths]:
    assert not pathlib.Path(f"/sys/class/net/{link}").exists(), link
  assert not any(pathlib.Path(f"/proc/{pid}").exists() for pid in pids)
  assert not c.tmp.exists()
  assert not (multihost.ETC_NETNS / c.namespaces[0]).exists()
