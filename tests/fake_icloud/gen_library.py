#!/usr/bin/python3
"""Write an explicit fake-iCloud library spec (see LIBRARY.md).

    gen_library.py --assets 60 --seed 1 --out lib.json [--size-scale 1.0]
                   [--hostile none|safe|all] [--shared N] [--no-albums]
                   [--no-special] [--now ISO] [--faults JSON]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import library  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, required=True)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--out", required=True, help="output file ('-' = stdout)")
    ap.add_argument("--size-scale", type=float, default=1.0)
    ap.add_argument("--hostile", choices=("none", "safe", "all"), default="safe")
    ap.add_argument("--shared", type=int, default=None, help="assets in the SharedSync zone")
    ap.add_argument("--no-albums", action="store_true")
    ap.add_argument("--no-special", action="store_true", help="omit the fixed tricky records")
    ap.add_argument("--now", default=None, help="fixed server clock (ISO-8601) for URL expiry")
    ap.add_argument("--faults", default=None, help="faults object (JSON text)")
    a = ap.parse_args(argv)
    seed = int(a.seed) if a.seed.isdigit() else a.seed
    spec = library.generate_spec(a.assets, seed, size_scale=a.size_scale, hostile=a.hostile,
                                 shared=a.shared, albums=not a.no_albums,
                                 special=False if a.no_special else None, now=a.now)
    if a.faults:
        spec["faults"] = json.loads(a.faults)
    # validate through the loader (bad references raise here, not in the fake)
    lib = library.Library()
    lib._build(spec)
    n_assets, n_albums = len(lib.assets), len(lib.albums)
    del lib
    if a.out == "-":
        json.dump(spec, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=1, ensure_ascii=False)   # streamed, not one big string
            f.write("\n")
    print("wrote %d assets, %d albums" % (n_assets, n_albums), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
