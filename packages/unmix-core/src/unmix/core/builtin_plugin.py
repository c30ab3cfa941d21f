"""unmix-core's own plugin: the built-in transforms, registered exactly as a third party would.

Declared as the `core` entry point of the `unmix` group in unmix-core's pyproject.toml. The
transforms module is imported inside the hook, not here, because every `unmix` command (even
`unmix --help`) imports the plugin modules to collect their commands.
"""

from __future__ import annotations

from unmix.core.hookspecs import Register, hookimpl


@hookimpl
def register_transforms(register: Register) -> None:
    from unmix.core.data.transforms import BUILTIN_TRANSFORMS

    for transform_class in BUILTIN_TRANSFORMS:
        register(transform_class.name, transform_class)
