"""`fmnist-ray sweep SPEC --kuberay RAYJOB.yaml`: the RayJob manifest passes KubeRay v1.7.0's own
schema (tests/data/kuberay/, with KubeRay's sample as the known-good case), refuses storage the
pods cannot share, and its entrypoint runs a sweep on a real local Ray as KubeRay submits it."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from fmnist_ray.cli.app import app
from fmnist_ray.cluster.kuberay import SPEC_DIR, plan_workers
from fmnist_ray.config import SweepSpec
from fmnist_ray.spec.file import load_spec, parse_spec_text

from .conftest import REPO

runner = CliRunner()
KUBERAY = REPO / "tests" / "data" / "kuberay"
EXAMPLE = REPO / "sweeps" / "kubernetes" / "smoke-rayjob.yaml"
EXAMPLE_COMMAND = ["sweep", "sweeps/smoke.yaml", "--kuberay", "sweeps/kubernetes/smoke-rayjob.yaml",
                   "--storage", "s3://BUCKET/fmnist-ray"]


def _strict(schema):
    """The CRD's OpenAPI v3 schema as a JSON schema that refuses unknown fields, as `kubectl
    apply` does by default (strict field validation); `nullable` allows null. Kubernetes' CEL
    rules (`x-kubernetes-validations`) are not evaluated here."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if "properties" in schema:  # a map of field names to schemas, not a schema itself
        out["properties"] = {name: _strict(s) for name, s in schema["properties"].items()}
        if ("additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
    if schema.get("nullable") and "type" in schema:
        out["type"] = [schema["type"], "null"]
    return out


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load((KUBERAY / "ray.io_rayjobs.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == "RayJob"
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(v1["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _problems(validator, rayjob: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(rayjob)]


def _documents(path: Path) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text())}


def _write(tmp_path: Path, *args: str, spec: str = "sweeps/smoke.yaml") -> dict[str, dict]:
    out = tmp_path / "rayjob.yaml"
    result = runner.invoke(app, ["sweep", str(REPO / spec), "--kuberay", str(out), *args])
    assert result.exit_code == 0, result.output
    assert f"run it with: kubectl apply -f {out}" in result.stdout
    return _documents(out)


def test_the_rayjob_and_kuberays_sample_pass_the_v1_7_crd_schema(validator, tmp_path):
    sample = _documents(KUBERAY / "ray-job.sample.yaml")["RayJob"]
    assert _problems(validator, sample) == []
    cpu = _write(tmp_path, "--storage", "s3://bucket/fmnist-ray", "--set", "seeds=2")
    gpu = _write(tmp_path, "--storage", "gs://bucket/dir", "--image", "ghcr.io/me/fmnist:1",
                 "--resume", "--errored", "restart", spec="sweeps/best_gpu.yaml")
    for docs in (cpu, gpu, _documents(EXAMPLE)):
        rayjob = docs["RayJob"]
        assert _problems(validator, rayjob) == []
        assert rayjob["apiVersion"] == "ray.io/v1"
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,45}[a-z0-9])?", rayjob["metadata"]["name"])
        spec = rayjob["spec"]
        assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
        cluster = spec["rayClusterSpec"]
        assert cluster["authOptions"] == {"mode": "token"}
        (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
        assert head["volumeMounts"][0]["mountPath"] == SPEC_DIR
        assert cluster["headGroupSpec"]["template"]["spec"]["volumes"][0]["configMap"] == {
            "name": docs["ConfigMap"]["metadata"]["name"]}
        assert parse_spec_text(docs["ConfigMap"]["data"]["spec.yaml"], "configmap").name
    assert parse_spec_text(cpu["ConfigMap"]["data"]["spec.yaml"], "configmap") == load_spec(
        REPO / "sweeps/smoke.yaml", ["seeds=2"])
    assert parse_spec_text(gpu["ConfigMap"]["data"]["spec.yaml"], "configmap") == load_spec(
        REPO / "sweeps/best_gpu.yaml")
    cpu_job, gpu_job = cpu["RayJob"]["spec"], gpu["RayJob"]["spec"]
    assert cpu_job["entrypoint"] == (f"python -m fmnist_ray sweep {SPEC_DIR}/spec.yaml --storage "
                                     f"s3://bucket/fmnist-ray --address auto")
    (workers,) = cpu_job["rayClusterSpec"]["workerGroupSpecs"]
    assert workers["replicas"] == 4  # smoke: 2 learning rates x 2 seeds, 1 CPU each
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "1", "memory": "4Gi"}
    assert gpu_job["entrypoint"].endswith("--address auto --resume --errored restart")
    (workers,) = gpu_job["rayClusterSpec"]["workerGroupSpecs"]
    (container,) = workers["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/me/fmnist:1"
    # best_gpu: 2 CPU + 0.25 GPU a trial, 4 at once: one pod with a whole GPU holds all four.
    assert workers["replicas"] == 1
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "16Gi",
                                                "nvidia.com/gpu": "1"}


@pytest.mark.parametrize(("path", "value", "named"), [
    (["spec", "shutdownAfterJobFinish"], True, "shutdownAfterJobFinish"),  # a typo
    (["spec", "ttlSecondsAfterFinished"], "300", "ttlSecondsAfterFinished"),
    (["spec", "rayClusterSpec", "authOptions", "mode"], "tokens", "mode"),
    (["spec", "rayClusterSpec", "workerGroupSpecs", 0, "replicas"], "two", "replicas"),
    (["spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0,
      "resources", "limits", "cpu"], "two", "cpu"),
    (["spec", "rayClusterSpec", "headGroupSpec", "rayStartParams", "num-cpus"], 0, "num-cpus"),
], ids=["unknown-key", "ttl-as-text", "auth-mode", "replicas-as-text", "bad-quantity",
        "start-param-not-text"])
def test_a_broken_rayjob_fails_the_schema(validator, path, value, named):
    rayjob = _documents(EXAMPLE)["RayJob"]
    assert _problems(validator, rayjob) == []
    node = rayjob
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    problems = _problems(validator, rayjob)
    assert problems and any(named in p for p in problems), problems


def test_a_rayjob_without_its_required_fields_fails_the_schema(validator):
    rayjob = _documents(EXAMPLE)["RayJob"]
    del rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["groupName"]
    del rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0][
        "name"]
    problems = _problems(validator, rayjob)
    assert any("'groupName' is a required property" in p for p in problems), problems
    assert any("'name' is a required property" in p for p in problems), problems


def test_the_committed_example_is_what_the_command_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the example names the spec and itself relative to the checkout
    out = tmp_path / "smoke-rayjob.yaml"
    args = [*EXAMPLE_COMMAND]
    args[3] = str(out)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = out.read_text().replace(str(out), EXAMPLE_COMMAND[3])
    assert written == EXAMPLE.read_text(), (
        f"regenerate it: fmnist-ray {shlex.join(EXAMPLE_COMMAND)}")


@pytest.mark.parametrize(("resources", "concurrent", "expected"), [
    ({"cpu": 1}, None, (2, 1, 1, 0)),  # smoke's two trials: two 1-CPU pods
    ({"cpu": 0.5}, None, (1, 2, 1, 0)),  # halves packed into a whole CPU
    ({"cpu": 3}, 1, (1, 1, 3, 0)),
    ({"cpu": 2, "gpu": 0.25}, None, (1, 4, 8, 1)),
    ({"cpu": 4, "gpu": 2}, 1, (1, 1, 4, 2)),
    ({"cpu": 1, "gpu": 0.3}, None, (1, 3, 3, 1)),
])
def test_worker_pods_hold_whole_cpus_gpus_and_trials(resources, concurrent, expected):
    spec = SweepSpec(name="s", axes={"lr": [0.001, 0.003]}, resources=resources,
                     max_concurrent_trials=concurrent)
    workers = plan_workers(spec)
    assert (workers.replicas, workers.trials_per_pod, workers.cpus, workers.gpus) == expected
    assert workers.memory_gib == 4 * workers.trials_per_pod


@pytest.mark.parametrize(("args", "message"), [
    ([], "error: --storage ./results: the pods of a RayJob share no disk and are deleted when "
         "it ends; use --storage s3://BUCKET/DIR or gs://BUCKET/DIR"),
    (["--storage", "/mnt/shared/results"], "error: --storage /mnt/shared/results: the pods of "
                                           "a RayJob share no disk"),
    (["--storage", "file:///mnt/results"], "error: --storage file:///mnt/results: the pods"),
    (["--storage", "s3://"], "error: --storage s3://: the pods"),
    (["--storage", "s3://bucket/my results"], "error: --storage s3://bucket/my results: KubeRay "
                                              "passes the entrypoint through a shell twice"),
    (["--storage", "s3://b/d", "--address", "auto"], "error: --kuberay and --address: --kuberay "
                                                     "writes a manifest"),
    (["--storage", "s3://b/d", "--dry-run"], "error: --kuberay and --dry-run"),
    (["--storage", "s3://b/d", "--kuberay", "/no/such/dir/job.yaml"],
     "error: --kuberay /no/such/dir/job.yaml: no folder /no/such/dir; create it"),
], ids=["default-local", "absolute-path", "file-uri", "no-bucket", "needs-quoting", "address",
        "dry-run", "no-folder"])
def test_storage_the_pods_cannot_share_and_other_mistakes_get_one_line(tmp_path, args, message):
    out = tmp_path / "rayjob.yaml"
    result = runner.invoke(app, ["sweep", str(REPO / "sweeps/smoke.yaml"), "--kuberay", str(out),
                                 *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_image_without_kuberay_is_refused():
    result = runner.invoke(app, ["sweep", str(REPO / "sweeps/smoke.yaml"), "--image", "x:1"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --image: it names the image of a RayJob; add "
                                     "--kuberay RAYJOB.yaml")


@pytest.fixture
def local_ray_with_jobs(tmp_path, monkeypatch):
    """A local Ray head with the Jobs API, as KubeRay's head pod runs it; its jobs find this
    environment's `python`, as the pods find the image's."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": 300 * 2**20, "include_dashboard": True,
        "dashboard_port": port})
    yield f"http://127.0.0.1:{port}"
    cluster.shutdown()


@pytest.mark.slow  # a Ray head with the Jobs API and a sweep: about 25 s
def test_the_entrypoint_runs_the_sweep_as_kuberays_submitter_submits_it(
        tmp_path, synthetic_dir, local_ray_with_jobs):
    docs = _write(tmp_path, "--storage", "s3://bucket/fmnist-ray", "--set", "trial.epochs=1")
    spec_dir = tmp_path / "mounted"  # the ConfigMap, as the head pod mounts it
    spec_dir.mkdir()
    (spec_dir / "spec.yaml").write_text(docs["ConfigMap"]["data"]["spec.yaml"])
    job = docs["RayJob"]["spec"]
    storage = tmp_path / "bucket"  # no S3 here: the one substitution besides the mount
    entrypoint = (job["entrypoint"].replace(SPEC_DIR, str(spec_dir))
                  .replace("s3://bucket/fmnist-ray", str(storage)))
    assert entrypoint != job["entrypoint"] and "s3://" not in entrypoint
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])
    runtime_env["env_vars"]["FMNIST_DATA"] = str(synthetic_dir)  # the image has the real data
    # KubeRay's submitter pod: bash runs `ray job submit ... -- ENTRYPOINT` (job.go in
    # ray-operator/controllers/ray/common), then Ray runs the joined words through a shell.
    submit = (f"{shlex.quote(str(Path(sys.executable).parent / 'ray'))} job submit --address "
              f"{local_ray_with_jobs} --runtime-env-json {shlex.quote(json.dumps(runtime_env))} "
              f"-- {entrypoint}")
    result = subprocess.run(["bash", "-c", submit], capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sweep finished" in result.stdout and "succeeded" in result.stdout
    trials = pd.read_parquet(storage / "smoke" / "trials.parquet")
    assert len(trials) == 2 and set(trials["status"]) == {"completed"}
    assert set(trials["epochs_run"]) == {1}
