"""A multi-host cluster on one machine, for tests that launch Horovod or Open MPI across hosts.

Each "host" is a Linux network namespace with its own address on a private /24, a veth pair to
a bridge in the root namespace, and its own sshd listening on that address. `horovodrun -H` and
`mpirun -H` started from one host's namespace (`Cluster.command_on`) reach the others through
ssh exactly as on a cluster: the ssh client is a wrapper in the harness's temp folder, first on
the PATH that `Cluster.env()` hands out, with a generated key and config; nothing global
(/root/.ssh, /etc/ssh) is read or written. The filesystem is shared, as NFS would be.

Traffic stays between loopback and the namespaces' addresses: the namespaces have no default
route and the bridge has no address, so nothing can leave the bridge. Links can be cut and
restored (`cut`, `restore`) and rate-limited with tc's tbf (`limit_rate`, `clear_rate`).

Needs root, iproute2, and OpenSSH's client and server (scripts/install_test_tools.sh):
`available()` says why not when it can't run.

  with multihost.Cluster(num_hosts=2) as cluster:
    subprocess.run(cluster.command_on(0, ["horovodrun", "-H", f"{cluster.hosts[0]}:1,..."]),
                   env=cluster.env(), timeout=120)
"""
import atexit
import contextlib
import ipaddress
import itertools
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

VENV_BIN = pathlib.Path(sys.executable).parent
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
# The veth end inside every namespace has this name, as every node of a cluster has its eth0:
# Horovod's Gloo needs one interface name common to all hosts (horovodrun --network-interface).
IFACE = "eth0"
ETC_NETNS = pathlib.Path("/etc/netns")  # per-namespace /etc files of `ip netns exec`
SSH_CONNECT_TIMEOUT = 5  # seconds; also bounds how long ssh to a cut host takes to fail
_SERIAL = itertools.count()


def _which(tool: str) -> str | None:
  """The path of `tool` on PATH or in the sbin folders (a non-login root PATH may lack them)."""
  return shutil.which(tool, path=f"{os.environ.get('PATH', '')}{os.pathsep}{SBIN_PATH}")


def available() -> str | None:
  """None when a Cluster can be built here, else a one-line reason (for pytest.skip)."""
  if os.geteuid() != 0:
    return "multihost needs root (network namespaces, veths, a bridge, sshd)"
  for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("sshd", "openssh-server"),
                        ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")):
    if _which(tool) is None:
      return f"multihost needs {tool} ({package}): run scripts/install_test_tools.sh"
  return None


def _used_networks() -> list:
  """IPv4 networks of the root namespace's addresses and routes (to pick a /24 they lack)."""
  nets = []
  for args in (["-4", "-o", "addr", "show"], ["-4", "route", "show", "table", "all"]):
    out = subprocess.run([_which("ip"), *args], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    for word in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", out):
      with contextlib.suppress(ValueError):
        nets.append(ipaddress.ip_network(word, strict=False))
  return nets


def _pick_subnet(serial: int) -> ipaddress.IPv4Network:
  """A 10.213.<n>.0/24 the machine does not use, n derived from the pid (and a serial number)."""
  used = _used_networks()
  start = (os.getpid() + serial) % 254 + 1
  for step in range(254):
    net = ipaddress.ip_network(f"10.213.{(start + step - 1) % 254 + 1}.0/24")
    # A default route (0.0.0.0/0) overlaps everything and says nothing about local use.
    if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
      return net
  raise RuntimeError("multihost: no free /24 in 10.213.0.0/16")


def _rate_bits(rate: str) -> float:
  """Bits per second of a tc rate such as "100mbit", "2500mbit", "1gbit" or "10mbps"."""
  match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|bps)", rate.strip().lower())
  if not match:
    raise ValueError(f"multihost: rate {rate!r} is not like '100mbit', '1gbit' or '10mbps'")
  value = float(match.group(1)) * 1000 ** " kmgt".index(match.group(2) or " ")
  return value * (8 if match.group(3) == "bps" else 1)


def _kill_netns_processes(ip: str, ns: str) -> None:
  """SIGKILLs whatever still runs in namespace `ns` (only the harness and its users start
  processes there), a few rounds in case something forks meanwhile."""
  for _ in range(5):
    out = subprocess.run([ip, "netns", "pids", ns], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    pids = [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]
    if not pids:
      return
    for pid in pids:
      with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)


def _of_dead_process(name: str, pattern: re.Pattern) -> bool:
  """Whether `name` is the harness's and the process that made it (pid in the name) is gone."""
  match = pattern.fullmatch(name)
  if not match or int(match[1]) == os.getpid():
    return False
  try:  # a zombie (killed, not yet reaped) is dead too: the state follows "(comm)"
    return pathlib.Path(f"/proc/{match[1]}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
  except (OSError, IndexError):
    return True


def cleanup_stale() -> list[str]:
  """Removes what clusters of processes that died without teardown (a SIGKILLed pytest) left:
  their namespaces (and processes), links, /etc/netns folders and temp folders. Names carry
  the creating pid, so live clusters of other processes are left alone. Returns what it
  removed; Cluster.start() calls it."""
  ip = _which("ip") or "ip"
  removed = []
  net_names = re.compile(r"bt(\d+)[a-z](?:h\d+|br|v\d+)")
  run_netns = pathlib.Path("/run/netns")
  for ns in sorted(os.listdir(run_netns)) if run_netns.is_dir() else []:
    if _of_dead_process(ns, net_names):
      _kill_netns_processes(ip, ns)
      subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=20, check=False)
      removed.append(ns)
  for folder in sorted(ETC_NETNS.iterdir()) if ETC_NETNS.is_dir() else []:
    if _of_dead_process(folder.name, net_names):
      shutil.rmtree(folder, ignore_errors=True)
  for link in sorted(os.listdir("/sys/class/net")):
    if _of_dead_process(link, net_names):
      subprocess.run([ip, "link", "del", link], capture_output=True, timeout=20, check=False)
      removed.append(link)
  tmp_names = re.compile(r"bt(\d+)[a-z]-\w+")
  for folder in sorted(pathlib.Path(tempfile.gettempdir()).glob("bt*-*")):
    if folder.is_dir() and _of_dead_process(folder.name, tmp_names):
      shutil.rmtree(folder, ignore_errors=True)
      removed.append(str(folder))
  return removed


class Cluster:
  """`num_hosts` network namespaces joined by a bridge, each with an address and an sshd.

  Use it as a context manager: `__enter__` builds everything (and tears down what it built if a
  step fails), `__exit__` (or `close()`, idempotent, also run at interpreter exit) removes it.
  """

  def __init__(self, num_hosts: int = 2):
    if num_hosts < 1:
      raise ValueError("multihost: num_hosts must be >= 1")
    serial = next(_SERIAL)
    # Interface names have at most 15 characters: "bt" + pid (<= 7 digits) + a letter + "v12".
    self.tag = f"bt{os.getpid()}{'abcdefghijklmnopqrstuvwxyz'[serial % 26]}"
    self.num_hosts = num_hosts
    self.subnet = _pick_subnet(serial)
    self.hosts = [str(self.subnet.network_address + 1 + i) for i in range(num_hosts)]
    self.namespaces = [f"{self.tag}h{i}" for i in range(num_hosts)]
    self.bridge = f"{self.tag}br"
    self.veths = [f"{self.tag}v{i}" for i in range(num_hosts)]  # root-namespace ends
    self.iface = IFACE
    self.tmp: pathlib.Path | None = None
    self.bin: pathlib.Path | None = None
    self.ssh: pathlib.Path | None = None  # the ssh wrapper
    self._ip = _which("ip") or "ip"
    self._tc = _which("tc") or "tc"
    self._sshds: list[subprocess.Popen] = []
    self._created_ns: list[str] = []
    self._created_links: list[str] = []
    self._etc_folders: list[pathlib.Path] = []
    self._closed = False
    self._started = False

  # --- life cycle -------------------------------------------------------------------------

  def __enter__(self) -> "Cluster":
    self.start()
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def start(self) -> "Cluster":
    """Builds the keys, the ssh wrapper, the network and the sshds; tears down on failure."""
    if self._started:
      return self
    reason = available()
    if reason:
      raise RuntimeError(reason)
    cleanup_stale()
    self._started = True
    atexit.register(self.close)
    try:
      self.tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
      self._make_keys_and_wrapper()
      self._make_network()
      self._start_sshds()
    except BaseException:
      self.close()
      raise
    return self

  def close(self) -> None:
    """Kills every process in the namespaces (sshds, sessions, ranks, launchers), deletes the
    namespaces, veths and bridge, and removes the temp folder. Safe to call more than once."""
    if self._closed or not self._started:
      return
    self._closed = True
    with contextlib.suppress(Exception):
      atexit.unregister(self.close)
    for proc in self._sshds:
      with contextlib.suppress(Exception):
        proc.terminate()
    for ns in self._created_ns:
      _kill_netns_processes(self._ip, ns)
    for proc in self._sshds:
      try:
        proc.wait(timeout=5)
      except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(Exception):
          proc.wait(timeout=5)
    for ns in self._created_ns:
      self._quiet([self._ip, "netns", "del", ns])  # also destroys the veth ends inside
    for link in reversed(self._created_links):
      if pathlib.Path(f"/sys/class/net/{link}").exists():
        self._quiet([self._ip, "link", "del", link])
    for folder in self._etc_folders:
      shutil.rmtree(folder, ignore_errors=True)
    if self._etc_folders:
      with contextlib.suppress(OSError):
        ETC_NETNS.rmdir()  # only when empty: another cluster may be using it
    if self.tmp is not None:
      shutil.rmtree(self.tmp, ignore_errors=True)

  # --- setup steps --------------------------------------------------------------------------

  def _run(self, args: list, timeout: float = 20) -> subprocess.CompletedProcess:
    """Runs a setup command; raises with its output when it fails."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
      raise RuntimeError(f"multihost: {' '.join(map(str, args))} exited {proc.returncode}: "
                         f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc

  def _quiet(self, args: list) -> None:
    """Runs a teardown command, ignoring failures (the thing may already be gone)."""
    with contextlib.suppress(Exception):
      subprocess.run([str(a) for a in args], capture_output=True, timeout=20, check=False)

  def _make_keys_and_wrapper(self) -> None:
    """A client key (authorized on every host), a host key per host, ssh_config, bin/ssh."""
    keygen = _which("ssh-keygen")
    self._run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "multihost", "-f",
               self.tmp / "id_ed25519"])
    shutil.copy(self.tmp / "id_ed25519.pub", self.tmp / "authorized_keys")
    for i in range(self.num_hosts):
      (self.tmp / f"host{i}").mkdir()
      self._run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"host{i}", "-f",
                 self.tmp / f"host{i}" / "ssh_host_ed25519_key"])
    config = self.tmp / "ssh_config"
    config.write_text(
      "Host *\n"
      "  User root\n"
      f"  IdentityFile {self.tmp / 'id_ed25519'}\n"
      "  IdentitiesOnly yes\n"
      "  StrictHostKeyChecking no\n"
      "  UserKnownHostsFile /dev/null\n"
      "  GlobalKnownHostsFile /dev/null\n"
      "  LogLevel ERROR\n"
      "  BatchMode yes\n"
      f"  ConnectTimeout {SSH_CONNECT_TIMEOUT}\n"
      # A cut link ends a session within 2 * 3 seconds instead of TCP's minutes.
      "  ServerAliveInterval 2\n"
      "  ServerAliveCountMax 3\n"
      "  ControlMaster no\n"
      "  ControlPath none\n")
    self.bin = self.tmp / "bin"
    self.bin.mkdir()
    self.ssh = self.bin / "ssh"
    self.ssh.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F "{config}" "$@"\n')
    self.ssh.chmod(0o755)

  def _disable_ipv6(self, ns: str | None, name: str) -> None:
    """Keeps IPv6 (router solicitations, DAD) off our links; ignored on kernels without it."""
    path = f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6"
    if ns is None:
      with contextlib.suppress(OSError):
        pathlib.Path(path).write_text("1")
    else:
      self._quiet([self._ip, "netns", "exec", ns, "sh", "-c", f"[ -e {path} ] && echo 1 > {path}"])

  def _make_network(self) -> None:
    """The bridge (no address: the root namespace takes no part), one namespace per host with
    lo up and eth0 (its veth end) holding the host's address; no default route anywhere."""
    ip = self._ip
    self._run([ip, "link", "add", self.bridge, "type", "bridge", "forward_delay", "0",
               "stp_state", "0"])
    self._created_links.append(self.bridge)
    self._disable_ipv6(None, self.bridge)
    # With br_netfilter loaded, bridged frames would go through the host's iptables (e.g. a
    # FORWARD policy of DROP): keep this bridge out of it.
    with contextlib.suppress(RuntimeError):
      self._run([ip, "link", "set", self.bridge, "type", "bridge", "nf_call_iptables", "0",
                 "nf_call_ip6tables", "0", "nf_call_arptables", "0"])
    self._run([ip, "link", "set", self.bridge, "up"])
    for ns, veth, addr in zip(self.namespaces, self.veths, self.hosts):
      self._run([ip, "netns", "add", ns])
      self._created_ns.append(ns)
      self._disable_ipv6(ns, "all")
      self._disable_ipv6(ns, "default")
      self._run([ip, "link", "add", veth, "type", "veth", "peer", "name", IFACE, "netns", ns])
      self._created_links.append(veth)
      self._disable_ipv6(None, veth)
      self._run([ip, "link", "set", veth, "master", self.bridge, "up"])
      self._run([ip, "-n", ns, "link", "set", "lo", "up"])
      self._run([ip, "-n", ns, "addr", "add", f"{addr}/{self.subnet.prefixlen}", "dev", IFACE])
      self._run([ip, "-n", ns, "link", "set", IFACE, "up"])
    self._write_etc_files()

  def _write_etc_files(self) -> None:
    """/etc/netns/<ns>/hosts and resolv.conf, which `ip netns exec` bind-mounts over /etc's.

    The hosts file maps every host's name (its namespace's) to its address and, as on a real
    node, this machine's hostname (which all namespaces share) to the host's own address:
    Horovod 0.28's Gloo process-set contexts ignore HOROVOD_GLOO_IFACE and bind to whatever
    the hostname resolves to, which is 127.0.0.1 in the root namespace. resolv.conf names no
    server, so a lookup of any other name fails at once instead of asking outside.
    """
    hostname = socket.gethostname()
    for ns, addr in zip(self.namespaces, self.hosts):
      folder = ETC_NETNS / ns
      for attempt in range(3):  # another cluster's teardown may rmdir /etc/netns meanwhile
        try:
          folder.mkdir(parents=True, exist_ok=True)
          break
        except FileNotFoundError:
          if attempt == 2:
            raise
      self._etc_folders.append(folder)
      names = "".join(f"{a} {n}\n" for a, n in zip(self.hosts, self.namespaces) if n != ns)
      (folder / "hosts").write_text(f"127.0.0.1 localhost\n{addr} {ns} {hostname}\n{names}")
      (folder / "resolv.conf").write_text("# multihost: no name server\noptions attempts:1\n")

  def _start_sshds(self) -> None:
    """One sshd per namespace on its host's address, port 22, logging to hostN/sshd.log."""
    sshd = _which("sshd")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    for i, (ns, addr) in enumerate(zip(self.namespaces, self.hosts)):
      folder = self.tmp / f"host{i}"
      config = folder / "sshd_config"
      config.write_text(
        f"ListenAddress {addr}\n"
        "Port 22\n"
        f"HostKey {folder / 'ssh_host_ed25519_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {self.tmp / 'authorized_keys'}\n"
        "UsePAM no\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "StrictModes no\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "PrintLastLog no\n"
        "X11Forwarding no\n"
        "LogLevel VERBOSE\n"
        # mpirun and horovodrun open several sessions at once.
        "MaxStartups 100:30:200\n"
        "MaxSessions 100\n"
        # The server side also notices a cut link and ends the session's processes.
        "ClientAliveInterval 2\n"
        "ClientAliveCountMax 3\n")
      self._run([sshd, "-t", "-f", config])
      log = folder / "sshd.log"
      self._sshds.append(subprocess.Popen(
        [self._ip, "netns", "exec", ns, sshd, "-D", "-f", str(config), "-E", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True))
    deadline = time.monotonic() + 15
    for i, (proc, addr) in enumerate(zip(self._sshds, self.hosts)):
      log = self.tmp / f"host{i}" / "sshd.log"
      while f"Server listening on {addr} port 22" not in (
          log.read_text(errors="replace") if log.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
          text = log.read_text(errors="replace") if log.exists() else "(no log)"
          raise RuntimeError(f"multihost: sshd of host {i} did not start: {text[-2000:]}")
        time.sleep(0.05)

  # --- what tests use -------------------------------------------------------------------------

  def env(self, **extra: str) -> dict:
    """os.environ with the ssh wrapper and the venv's bin first on PATH, and Open MPI set up
    to launch through the wrapper as root and to talk only over the cluster's subnet."""
    env = dict(os.environ)
    env.update(
      PATH=os.pathsep.join([str(self.bin), str(VENV_BIN), env.get("PATH", ""), SBIN_PATH]),
      OMPI_MCA_plm_rsh_agent=str(self.ssh),
      OMPI_ALLOW_RUN_AS_ROOT="1",
      OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
      OMPI_MCA_btl_tcp_if_include=str(self.subnet),
      OMPI_MCA_oob_tcp_if_include=str(self.subnet),
    )
    env.update(extra)
    return env

  def command_on(self, host_index: int, args: list) -> list[str]:
    """`args` as run on host `host_index` (inside its namespace), e.g. to start a launcher."""
    return [self._ip, "netns", "exec", self.namespaces[host_index], *map(str, args)]

  def ssh_command(self, host_index: int, *remote: str) -> list[str]:
    """The ssh wrapper's command line that runs `remote` on host `host_index` (run it from
    another host with command_on: the root namespace has no route to the hosts)."""
    return [str(self.ssh), self.hosts[host_index], *remote]

  def run_on(self, host_index: int, args: list, timeout: float = 60,
             **kwargs) -> subprocess.CompletedProcess:
    """Runs `args` on host `host_index` with env(), text output captured, within `timeout`."""
    kwargs.setdefault("env", self.env())
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(self.command_on(host_index, args), timeout=timeout, check=False,
                          **kwargs)

  def netns_id(self, host_index: int) -> str:
    """What `readlink /proc/self/ns/net` prints in host `host_index`, e.g. "net:[4026532]"."""
    return f"net:[{os.stat(f'/run/netns/{self.namespaces[host_index]}').st_ino}]"

  def _indices(self, host_index: int | None) -> list[int]:
    return list(range(self.num_hosts)) if host_index is None else [host_index]

  def cut(self, host_index: int) -> None:
    """Takes host `host_index`'s link down (its root-namespace veth end): it is unreachable."""
    self._run([self._ip, "link", "set", self.veths[host_index], "down"])

  def restore(self, host_index: int) -> None:
    """Brings host `host_index`'s link back up after `cut`."""
    self._run([self._ip, "link", "set", self.veths[host_index], "up"])

  def limit_rate(self, rate: str, host_index: int | None = None) -> None:
    """Limits host `host_index`'s link (all hosts' when None) to `rate` in both directions
    with a tbf qdisc, e.g. "100mbit", "1gbit", "2500mbit"."""
    bytes_per_s = _rate_bits(rate) / 8
    # tbf needs a bucket of at least rate / HZ; 10 ms worth (>= 64 KiB, a GSO packet) is ample.
    burst = max(64 * 1024, int(bytes_per_s / 100))
    tbf = ["root", "tbf", "rate", rate, "burst", str(burst), "latency", "100ms"]
    for i in self._indices(host_index):
      self._run([self._tc, "qdisc", "replace", "dev", self.veths[i], *tbf])  # into the host
      self._run(self.command_on(i, [self._tc, "qdisc", "replace", "dev", IFACE, *tbf]))  # out

  def clear_rate(self, host_index: int | None = None) -> None:
    """Removes the limits `limit_rate` set (on all hosts when `host_index` is None)."""
    for i in self._indices(host_index):
      self._quiet([self._tc, "qdisc", "del", "dev", self.veths[i], "root"])
      self._quiet(self.command_on(i, [self._tc, "qdisc", "del", "dev", IFACE, "root"]))
