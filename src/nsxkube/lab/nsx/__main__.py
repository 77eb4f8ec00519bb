"""python -m nsxkube.lab.nsx --preset tanzu --listen 127.0.0.1:0 --log FILE"""

from __future__ import annotations

import argparse
import sys

from nsxkube.lab.nsx.emulator import run_foreground
from nsxkube.lab.nsx.presets import PRESETS
from nsxkube.lab.nsx.realization import DEFAULT_REALIZATION_DELAY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nsxkube.lab.nsx", description="Serve the NSX Policy API emulator.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="empty")
    parser.add_argument("--listen", default="127.0.0.1:0", help="loopback HOST:PORT (port 0: any free port)")
    parser.add_argument("--log", dest="log_path", help="append one JSON line per request to this file")
    parser.add_argument("--realization-delay", type=float, default=DEFAULT_REALIZATION_DELAY)
    parser.add_argument("--no-tls", dest="tls", action="store_false", help="serve plain HTTP")
    args = parser.parse_args(argv)
    try:
        return run_foreground(args.preset, args.listen, args.log_path, args.realization_delay, args.tls)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
