"""Ray's token authentication, client side: whether a cluster asks for a token, finding it as
Ray's own clients do, and turning token mode on for this process before it talks to the cluster.

Ray (2.60) turns token mode on for a client only when `RAY_AUTH_MODE=token` is set, or for
`auto` when a token is at hand; an explicit `HOST:PORT` or `http://HEAD:8265` never does, and
then fails with a traceback or minutes of retries. Here the cluster is asked first (the
dashboard's public `/api/authentication_mode`, or one unauthenticated GCS call), so the token
is only ever sent to a cluster that asked for one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fmnist_ray.errors import UserError

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_PATH = "~/.ray/auth_token"
GET_TOKEN = (f"get it with `ray get-auth-token` on the head (e.g. `ray exec cluster.yaml "
             f"'ray get-auth-token'`) and save it to {DEFAULT_TOKEN_PATH} or set {TOKEN_ENV}")
PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ClientAuth:
    """How this process authenticates to a cluster: `source` names where the token came from
    (None when the cluster asks for none)."""

    address: str
    source: str | None = None

    @property
    def required(self) -> bool:
        return self.source is not None

    def describe(self) -> str:
        if not self.required:
            return f"the cluster at {self.address} asks for no token"
        return f"token from {self.source}, accepted by the cluster at {self.address}"


def token_source() -> str:
    """Where Ray's token loader looks first: RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH
    names, else ~/.ray/auth_token."""
    if os.environ.get(TOKEN_ENV):
        return TOKEN_ENV
    if os.environ.get(TOKEN_PATH_ENV):
        return f"{TOKEN_PATH_ENV}={os.environ[TOKEN_PATH_ENV]}"
    return DEFAULT_TOKEN_PATH


def find_token() -> str | None:
    """The token Ray's own clients would send, read by Ray's own loader; None if there is none."""
    from ray._raylet import AuthenticationTokenLoader
    from ray.exceptions import AuthenticationError

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()  # the environment or the file may have changed since the last look
    try:
        if not loader.has_token(ignore_auth_mode=True):
            return None
        return loader.get_raw_token(ignore_auth_mode=True)
    except AuthenticationError:  # RAY_AUTH_TOKEN_PATH names a missing or empty file
        raise UserError(f"{token_source()}: the file cannot be read or is empty; point "
                        f"{TOKEN_PATH_ENV} at the cluster's token file, or unset it") from None


def prepare(address: str) -> ClientAuth:
    """Ask the cluster at `address` (http://HEAD:8265, HOST:PORT or auto) whether it wants a
    token; if so, check that ours is the one it accepts and turn token mode on for this
    process. A cluster that cannot be reached is left to the caller's own error."""
    jobs = address.startswith(("http://", "https://"))
    target = address.rstrip("/") if jobs else _gcs_address(address)
    if target is None:
        return ClientAuth(address)
    probe = _jobs_accepts if jobs else _gcs_accepts
    if probe(target, None) is not False:
        return ClientAuth(address)
    where = f"{address} ({target})" if address == "auto" else address
    token = find_token()
    if token is None:
        raise UserError(f"the Ray cluster at {where} uses token authentication and no token "
                        f"was found ({TOKEN_ENV}, {TOKEN_PATH_ENV} or {DEFAULT_TOKEN_PATH}); "
                        f"{GET_TOKEN}")
    if probe(target, token) is False:
        raise UserError(f"the Ray cluster at {where} refused the token from "
                        f"{token_source()}: it is not this cluster's; {GET_TOKEN}")
    _enable_token_mode()
    return ClientAuth(address, token_source())


def _enable_token_mode() -> None:
    """What `ray start` does when it finds a token: token mode for this process and its
    children, and Ray's cached config and token reloaded to see it."""
    from ray._raylet import AuthenticationTokenLoader, Config

    if os.environ.get(MODE_ENV) == "token":
        return  # already on (set by the user, or by an earlier call)
    os.environ[MODE_ENV] = "token"
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _gcs_address(address: str) -> str | None:
    """HOST:PORT of the GCS that `ray.init(address)` would join; None if none is found."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        return canonicalize_bootstrap_address(address)
    except Exception:  # no cluster found for `auto`, or an odd address: ray.init will say
        return None


def _gcs_accepts(gcs: str, token: str | None) -> bool | None:
    """Whether the GCS answers one call made with `token` (or none): False if it refuses it
    as unauthenticated, None if it cannot be asked."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(gcs) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=PROBE_TIMEOUT,
                              metadata=metadata)
        except grpc.RpcError as exc:
            return False if exc.code() == grpc.StatusCode.UNAUTHENTICATED else None
    return True


def _jobs_accepts(dashboard: str, token: str | None) -> bool | None:
    """Whether the dashboard takes requests with `token` (or none): it says whether it runs in
    token mode on a public endpoint, and answers 403 to a token that is not its own."""
    import requests

    try:
        if token is None:
            reply = requests.get(f"{dashboard}/api/authentication_mode", timeout=PROBE_TIMEOUT)
            mode = reply.json().get("authentication_mode") if reply.ok else None
            return False if mode == "token" else None
        reply = requests.get(f"{dashboard}/api/version", timeout=PROBE_TIMEOUT,
                             headers={"Authorization": f"Bearer {token}"})
    except (requests.RequestException, ValueError):
        return None
    return reply.status_code not in (401, 403)
