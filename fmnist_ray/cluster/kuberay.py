"""A sweep as a KubeRay `RayJob` manifest for `kubectl apply -f` (writes YAML, imports no Ray).

The manifest holds two objects: a `RayJob` (apiVersion `ray.io/v1`) whose cluster has a head
pod for the sweep's driver and a worker group sized from the spec's per-trial resources, and a
`ConfigMap` holding the validated spec, mounted into the head pod as KubeRay's own sample mounts
its code. The code comes from a container image built from this checkout
(`sweeps/kubernetes/Dockerfile`), so every pod runs the same fmnist-ray and Ray versions.

KubeRay's submitter pod runs `ray job submit ... -- ENTRYPOINT` through bash and Ray runs the
joined words through a shell again, so every word of the entrypoint must need no quoting.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from fmnist_ray import __version__
from fmnist_ray.config import SweepSpec
from fmnist_ray.errors import UserError

SPEC_DIR = "/home/ray/fmnist-ray"  # where the head pod mounts the ConfigMap with the spec
OBJECT_STORES = ("s3://", "gs://")
MEMORY_PER_TRIAL_GIB = 4  # a trial's torch, model and optimizer; ResNets at batch 512 fit
HEAD_CPUS, HEAD_MEMORY_GIB = 2, 4  # the driver: Tune's controller and the dataset, once
DEFAULT_CONCURRENCY = 16  # trials at once when the spec sets no max_concurrent_trials
TTL_SECONDS = 300  # the finished cluster's pods stay this long for `kubectl logs`, then go
# KubeRay names the cluster `<RayJob name>-<5 chars>` and its services after it: it refuses
# RayJob names that are not DNS-1035 labels or are longer than 47 characters.
MAX_NAME_LENGTH = 47


def default_image() -> str:
    """The image `sweeps/kubernetes/Dockerfile` builds for this version."""
    return f"fmnist-ray:{__version__}"


@dataclass(frozen=True)
class Workers:
    """The worker group: pods sized to hold whole trials, as many as run at once."""

    replicas: int
    trials_per_pod: int
    cpus: int
    gpus: int
    memory_gib: int


def plan_workers(spec: SweepSpec) -> Workers:
    """Worker pods from the spec's per-trial resources. Fractions are packed into whole CPUs and
    GPUs (0.25 GPU: four trials share a pod with one GPU), because KubeRay gives Ray a pod's
    CPU limit rounded down to whole CPUs."""
    cpu, gpu = spec.resources.cpu, spec.resources.gpu
    share = gpu if gpu else cpu
    per_pod = max(1, math.floor(1 / share + 1e-9)) if share < 1 else 1
    at_once = min(spec.trial_count(), spec.max_concurrent_trials or DEFAULT_CONCURRENCY)
    return Workers(replicas=math.ceil(at_once / per_pod), trials_per_pod=per_pod,
                   cpus=math.ceil(cpu * per_pod - 1e-9), gpus=math.ceil(gpu * per_pod - 1e-9),
                   memory_gib=MEMORY_PER_TRIAL_GIB * per_pod)


def check_object_storage(storage: str) -> None:
    """Pods share no disk: a RayJob's results must go to object storage the user reads back."""
    if not storage.startswith(OBJECT_STORES) or len(storage) <= len("s3://"):
        raise UserError(f"--storage {storage}: the pods of a RayJob share no disk and are "
                        f"deleted when it ends; use --storage s3://BUCKET/DIR or "
                        f"gs://BUCKET/DIR")
    if shlex.quote(storage) != storage:
        raise UserError(f"--storage {storage}: KubeRay passes the entrypoint through a shell "
                        f"twice, so the URI must need no quoting; use letters, digits and / - _ "
                        f". : only")


def job_name(spec: SweepSpec) -> str:
    """The RayJob's name: `fmnist-` and the sweep name as a DNS-1035 label."""
    slug = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")
    return f"fmnist-{slug}"[:MAX_NAME_LENGTH].rstrip("-")


def entrypoint_args(storage: str, sweep_args: list[str]) -> list[str]:
    """`python -m fmnist_ray sweep` on the mounted spec, joining the cluster KubeRay made."""
    return ["python", "-m", "fmnist_ray", "sweep", f"{SPEC_DIR}/spec.yaml",
            "--storage", storage, "--address", "auto", *sweep_args]


def manifest(spec: SweepSpec, storage: str, image: str, sweep_args: list[str] | None = None
             ) -> list[dict]:
    """The RayJob and the ConfigMap with the spec, as Kubernetes objects."""
    check_object_storage(storage)
    name, workers = job_name(spec), plan_workers(spec)
    words = entrypoint_args(storage, sweep_args or [])
    unsafe = [w for w in words if shlex.quote(w) != w]
    if unsafe:  # the options come from this module's caller: a bug, not a user mistake
        raise ValueError(f"entrypoint words that a shell would split: {unsafe}")
    head = {"name": "ray-head", "image": image,
            "ports": [{"containerPort": 6379, "name": "gcs-server"},
                      {"containerPort": 8265, "name": "dashboard"},
                      {"containerPort": 10001, "name": "client"}],
            "resources": _resources(HEAD_CPUS, HEAD_MEMORY_GIB, 0),
            "volumeMounts": [{"name": "sweep-spec", "mountPath": SPEC_DIR, "readOnly": True}]}
    worker = {"name": "ray-worker", "image": image,
              "resources": _resources(workers.cpus, workers.memory_gib, workers.gpus)}
    worker_pod: dict = {"containers": [worker]}
    if workers.gpus:  # GPU node pools are commonly tainted so that only GPU pods land there
        worker_pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists",
                                      "effect": "NoSchedule"}]
    labels = {"app.kubernetes.io/name": "fmnist-ray", "app.kubernetes.io/version": __version__}
    rayjob = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "entrypoint": " ".join(words),
            "runtimeEnvYAML": _Literal(yaml.safe_dump({"env_vars": {
                "RAY_USAGE_STATS_ENABLED": "0", "FMNIST_RAY_IN_JOB": "1"}}, sort_keys=False)),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "rayClusterSpec": {
                "rayVersion": metadata.version("ray"),
                # KubeRay makes a random token, keeps it in a Secret and gives it to every pod.
                "authOptions": {"mode": "token"},
                "headGroupSpec": {
                    # No trials on the head: it runs the driver and Ray's own services.
                    "rayStartParams": {"num-cpus": "0"},
                    "template": {"spec": {
                        "containers": [head],
                        "volumes": [{"name": "sweep-spec",
                                     "configMap": {"name": f"{name}-spec"}}]}},
                },
                "workerGroupSpecs": [{
                    "groupName": "trials",
                    "replicas": workers.replicas,
                    "minReplicas": workers.replicas,
                    "maxReplicas": workers.replicas,
                    "rayStartParams": {},
                    "template": {"spec": worker_pod},
                }],
            },
        },
    }
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": f"{name}-spec", "labels": labels},
                 "data": {"spec.yaml": _Literal(_spec_text(spec))}}
    return [rayjob, configmap]


def write_manifest(path: Path, spec: SweepSpec, storage: str, image: str,
                   sweep_args: list[str], command: str) -> tuple[str, Workers]:
    """Write the manifest to `path` under a header naming the `command` that made it; the
    RayJob's name and its worker pods."""
    objects = manifest(spec, storage, image, sweep_args)
    if not path.parent.is_dir():
        raise UserError(f"--kuberay {path}: no folder {path.parent}; create it or choose "
                        f"another path")
    header = (f"# fmnist-ray {__version__}: sweep '{spec.name}' as a KubeRay RayJob, written by\n"
              f"#   {command}\n"
              f"# The pods run the image {image}: build it from this checkout with\n"
              f"#   docker build -f sweeps/kubernetes/Dockerfile -t {image} .\n"
              f"# and push it where the cluster pulls from. Run: kubectl apply -f {path.name}\n")
    text = header + "---\n".join(yaml.dump(o, Dumper=_Dumper, sort_keys=False, width=1000)
                                 for o in objects)
    try:
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"--kuberay {path}: cannot write it ({exc.strerror}); choose another "
                        f"path") from None
    return objects[0]["metadata"]["name"], plan_workers(spec)


def _spec_text(spec: SweepSpec) -> str:
    """The spec as YAML without the settings left at their defaults: short to read in the
    manifest, and the same spec to the image's fmnist-ray, whose defaults are these."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def _resources(cpus: int, memory_gib: int, gpus: int) -> dict:
    """Requests equal to limits: Ray sizes its node from them, and a GPU must be both."""
    amounts = {"cpu": str(cpus), "memory": f"{memory_gib}Gi",
               **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {"requests": amounts, "limits": dict(amounts)}


class _Literal(str):
    """A string written as a YAML `|` block (the spec, the runtime environment)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Literal, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text,
                                                           style="|"))
