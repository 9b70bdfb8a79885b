"""cloud-init for NINA hosts: each host's user-data rendered from the base fragment and one fragment per role
(templates/<fragment>/), and the templated files those fragments deliver after boot. The public API is below;
render.py holds how."""

from cloudinit.render import (
    SIZE_LIMIT,
    RenderedFile,
    cloud_config,
    cloud_config_text,
    decode_user_data,
    delivered_files,
    fragments,
    render_template,
    user_data,
)

__all__ = [
    "SIZE_LIMIT",
    "RenderedFile",
    "cloud_config",
    "cloud_config_text",
    "decode_user_data",
    "delivered_files",
    "fragments",
    "render_template",
    "user_data",
]
