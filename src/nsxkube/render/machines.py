"""Kept only for src/nsxkube/phases/machines.py, which imports `render_node_cloud_init` from here;
the node cloud-init lives in render/cloud_init.py. Remove this module once that import points there.
"""

from nsxkube.render.cloud_init import render_node_cloud_init

__all__ = ["render_node_cloud_init"]
