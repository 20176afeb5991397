"""The Ray layer under the CLI: an embedded or existing cluster, Ray Jobs, preflight checks."""

from fmnist_ray.cluster.session import (
    alive_nodes,
    check_reachable,
    check_shared_storage,
    current_node_id,
    node_sizes,
    nodes_to_plan_for,
    ray_session,
    started_here,
)

__all__ = ["alive_nodes", "check_reachable", "check_shared_storage", "current_node_id",
           "node_sizes", "nodes_to_plan_for", "ray_session", "started_here"]
