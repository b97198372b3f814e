"""Meters from other packages: entry points of group `harness.meters`, each naming a Meter subclass.

A plugin joins the registry after the built-ins (so `--meter auto` prefers ours) only if it passes every check
below; otherwise it is rejected with a one-line reason, and no command breaks because of it. Loading happens
once, when harness/meters/registry.py is imported; `load` takes the entry points as an argument so tests can
hand it any list.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.meters.base import Meter, Option

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "harness.meters"
# What a name may look like: it goes into `--meter a,b`, power.csv columns and "<meter>/<component>" keys.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_PARTS = ("accelerator", "cpu", "node")  # "synthetic" is the built-in fake meter's alone
_SCOPES = ("device", "node")
# Keywords that MeterRequest and EnergyMonitor take themselves: an option of that name could never reach its
# meter (tests/test_meter_plugins.py checks this list against their signatures).
RESERVED_OPTIONS = frozenset({"names", "host_level", "host_leader", "meter", "sync", "framework", "region", "pue",
                              "carbon_intensity", "net_intensity", "sample_hz", "output_dir"})


@dataclass(frozen=True)
class Origin:
    """Where a backend comes from: built in (all fields empty), or a distribution's entry point."""

    distribution: str = ""
    version: str = ""
    entry_point: str = ""  # "module:Class"

    @property
    def builtin(self) -> bool:
        return not self.entry_point

    def __str__(self) -> str:
        if self.builtin:
            return "built-in"
        return f"plugin {self.distribution or '(unknown distribution)'} {self.version}".rstrip() + \
            f" ({self.entry_point})"

    def to_dict(self) -> dict[str, str]:
        if self.builtin:
            return {"kind": "built-in"}
        return {"kind": "plugin", "distribution": self.distribution, "version": self.version,
                "entry_point": self.entry_point}


BUILT_IN = Origin()


@dataclass(frozen=True)
class Rejected:
    """A plugin that did not load, and why (one line)."""

    name: str
    origin: Origin
    reason: str

    def line(self) -> str:
        return f"meter plugin {self.name} from {str(self.origin).removeprefix('plugin ')} not loaded: {self.reason}"


@dataclass
class Loaded:
    backends: dict[str, type[Meter]] = field(default_factory=dict)  # in auto order
    origins: dict[str, Origin] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)


def origin_of(ep: EntryPoint) -> Origin:
    dist = getattr(ep, "dist", None)  # None for an EntryPoint made by hand (tests)
    name = (dist.metadata["Name"] or "") if dist is not None else ""
    return Origin(name, dist.version if dist is not None else "", ep.value)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}"[:200] if text else type(e).__name__


def discover() -> list[EntryPoint]:
    """Every installed entry point of the group (none without looking further, when nothing declares one)."""
    if not _declared_anywhere():
        return []
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def _declared_anywhere() -> bool:
    """Whether any distribution on sys.path may declare the group. Reading the entry_points.txt files directly
    costs ~2 ms; importing importlib.metadata alone costs ~12 ms, and this runs at every command's start."""
    from importlib.machinery import PathFinder

    if any(hasattr(f, "find_distributions") and f is not PathFinder for f in sys.meta_path):
        return True  # a finder of its own kind may hold distributions: let importlib.metadata ask it
    header = f"[{GROUP}]".encode()
    for entry in sys.path:
        path = entry or "."
        if os.path.isfile(path):
            return True  # a zip on sys.path: importlib.metadata looks inside
        try:
            listing = os.scandir(path)
        except OSError:
            continue
        with listing:
            for item in listing:
                # What importlib.metadata reads: NAME.dist-info, NAME.egg-info, and an .egg's EGG-INFO.
                if not item.name.lower().endswith((".dist-info", "egg-info")):
                    continue
                try:
                    with open(os.path.join(item.path, "entry_points.txt"), "rb") as f:
                        if header in f.read():
                            return True
                except OSError:
                    continue
    return False


def load(entry_points: Iterable[EntryPoint], builtins: Mapping[str, type[Meter]]) -> Loaded:
    """The plugins among `entry_points` that may join `builtins`, in a fixed order (by name, whatever the order
    of sys.path), and each one rejected with its reason."""
    eps = sorted(entry_points, key=lambda ep: (ep.name, origin_of(ep).distribution))
    claims = Counter(ep.name for ep in eps)
    options = {o.name for b in builtins.values() for o in b.options} | RESERVED_OPTIONS
    flags = {o.flag for b in builtins.values() for o in b.options if o.flag} | {"--meter"}
    out = Loaded()
    for ep in eps:
        origin = origin_of(ep)
        if claims[ep.name] > 1:
            # Neither wins: which one sys.path finds first is no basis for a measurement.
            others = sorted(str(origin_of(o)) for o in eps if o.name == ep.name)
            out.rejected.append(Rejected(ep.name, origin, f"{len(others)} plugins claim the name: {'; '.join(others)}"))
            continue
        try:
            cls, why = _checked(ep, builtins, options, flags)
        except Exception as e:  # a class odd enough to break the checks themselves
            cls, why = None, f"cannot be checked: {one_line(e)}"
        if cls is None:
            out.rejected.append(Rejected(ep.name, origin, why))
            continue
        out.backends[ep.name], out.origins[ep.name] = cls, origin
        options |= {o.name for o in cls.options}
        flags |= {o.flag for o in cls.options if o.flag}
    return out


def _checked(ep: EntryPoint, builtins: Mapping[str, type[Meter]], options: set[str],
             flags: set[str]) -> tuple[type[Meter] | None, str]:
    """The plugin's class, or None and why not."""
    name = ep.name
    if name == "auto" or name in builtins:
        return None, f"the name {name!r} is {'reserved' if name == 'auto' else 'a built-in meter'}"
    if not _NAME.fullmatch(name):
        return None, f"the name {name!r} is not lower-case letters, digits, '.', '_' or '-'"
    try:
        cls: Any = ep.load()
    except (Exception, SystemExit) as e:  # whatever a third party's import does, the harness goes on
        return None, f"import failed: {one_line(e)}"
    if not (isinstance(cls, type) and issubclass(cls, Meter)):
        return None, f"{ep.value} is not a harness.meters.base.Meter subclass"
    if getattr(cls, "__abstractmethods__", None):
        return None, f"{cls.__name__} does not implement {', '.join(sorted(cls.__abstractmethods__))}"
    if getattr(cls, "name", None) != name:
        return None, f"{cls.__name__}.name is {getattr(cls, 'name', None)!r}, not the entry point's name {name!r}"
    desc = cls.description
    if not (isinstance(desc, tuple) and len(desc) == 3 and all(isinstance(d, str) for d in desc) and desc[0]):
        return None, f"{cls.__name__}.description must be (what it measures, 'measured' or 'modelled', rate)"
    if desc[1] not in ("measured", "modelled"):
        return None, f"{cls.__name__}.description says {desc[1]!r}: a plugin's figures are 'measured' or 'modelled'"
    if cls.part not in _PARTS or cls.scope not in _SCOPES:
        return None, f"{cls.__name__}: part must be one of {', '.join(_PARTS)} and scope one of {', '.join(_SCOPES)}"
    return _options_checked(cls, options, flags)


def _options_checked(cls: type[Meter], options: set[str], flags: set[str]) -> tuple[type[Meter] | None, str]:
    seen: set[str] = set()
    seen_flags: set[str] = set()
    for o in tuple(cls.options):
        if not isinstance(o, Option):
            return None, f"{cls.__name__}.options holds {o!r}, not a harness.meters.base.Option"
        if not o.name.isidentifier() or o.name in options or o.name in seen:
            return None, f"option {o.name!r} is not a free Python identifier (taken, or reserved)"
        if o.flag is not None and (not re.fullmatch(r"--[a-z0-9][a-z0-9-]*", o.flag) or o.flag in flags | seen_flags):
            return None, f"flag {o.flag!r} is not a free --lower-case-flag (taken, or malformed)"
        if o.flag is not None and not (isinstance(o.help, str) and o.help.strip()):
            return None, f"flag {o.flag} has no help: every flag says what it is"
        if not callable(o.type) or (o.check is not None and not callable(o.check)):
            return None, f"option {o.name!r}: type and check must be callables"
        seen.add(o.name)
        if o.flag:
            seen_flags.add(o.flag)
    return cls, ""
