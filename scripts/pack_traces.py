"""Pack the long text traces of the records kept in a reference folder: a training run's steps.csv and :::MLLOG
logs, an inference record's LoadGen logs (mlperf_log_detail.txt, mlperf_log_accuracy.json, its accuracy pass's
too), gzipped beside the record as <name>.gz, the original removed once the packed copy unpacks to the hash the
record holds. The harness reads a listed file plain or packed (harness/results/files.py `stored`), so `check`,
`report`, `site`, `compare` and `package` (which lays LoadGen's logs out plain) see the same records; the traces
shrink about 5x. A run's traces under 64 KiB stay plain, a LoadGen log under 16 KiB; power.csv stays plain
(MLPerf packages copy it as is), and so do metered commands' files.

    python scripts/pack_traces.py reference_results/cpu-2core/study [more folders...]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.results.files import PACKED_SUFFIX  # noqa: E402
from harness.results.inference import InferenceRecord  # noqa: E402
from harness.results.reader import read_records, runs_only  # noqa: E402

PACKABLE = ("steps.csv", "mllog.txt", "power_mllog.txt")
MIN_BYTES = 64 * 1024
LOADGEN_PACKABLE = ("mlperf_log_detail.txt", "mlperf_log_accuracy.json")
LOADGEN_MIN_BYTES = 16 * 1024


def pack(run_dir: Path, name: str, digest: str, min_bytes: int = MIN_BYTES) -> int:
    """Pack one listed trace; the bytes saved (0 when it stays plain)."""
    plain = run_dir / name
    if not plain.is_file() or plain.stat().st_size < min_bytes:
        return 0
    data = plain.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise SystemExit(f"error: {plain}: its sha256 differs from its record's; not packed")
    packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same bytes packed twice, the same file
    if hashlib.sha256(gzip.decompress(packed)).hexdigest() != digest:  # not an assert: python -O would skip it
        raise SystemExit(f"error: {plain}: its packed copy does not unpack to the record's sha256; not packed")
    plain.with_name(plain.name + PACKED_SUFFIX).write_bytes(packed)
    plain.unlink()
    return len(data) - len(packed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args()
    saved = files = 0
    for folder in args.folders:
        records = read_records(folder)
        kinds = [(r, PACKABLE, MIN_BYTES) for r in runs_only(records)]
        kinds += [(r, LOADGEN_PACKABLE, LOADGEN_MIN_BYTES) for r in records if isinstance(r, InferenceRecord)]
        for r, packable, least in kinds:
            for name, digest in r.files.items():
                if Path(name).name in packable and (n := pack(r.source.parent, name, digest, least)):
                    saved, files = saved + n, files + 1
    print(f"packed {files} traces, {saved / 2**20:.1f} MiB saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
