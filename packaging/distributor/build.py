#!/usr/bin/env python3
"""Builds cwlite's AWS Systems Manager Distributor package: what AWS-ConfigureAWSPackage
installs, so that State Manager keeps cwlite installed and up to date as it does the stock
AmazonCloudWatchAgent.

    packaging/distributor/build.py --bin x86_64=target/release/cwlite \\
        [--bin arm64=<aarch64 build>] [--version V] [--compress xz|gzip] --out DIR

For each architecture it makes two zips, each with install.sh, uninstall.sh, update.sh and
validate.sh at its root (the SSM agent runs them as `sh <action>.sh` in the unpacked zip):
- cwlite-deb-<arch>.zip holds the .deb (packaging/deb/build.sh), installed with dpkg;
- cwlite-linux-<arch>.zip holds the same files as a tree, with the .deb's maintainer scripts,
  for hosts without dpkg.
and manifest.json (schema 2.0) maps the Linux platforms the SSM agent reports (the os-release
ID, with its own mappings: amzn is amazon, rhel redhat, sles suse) and the architectures to
them. Other platforms (Windows, macOS, Bottlerocket) get the agent's "no manifest found". Upload
the directory to S3 and create or update the package (`aws ssm create-document --document-type
Package`, or `update-document` with the new version name); README has the steps.

The zips are reproducible: the same inputs give the same bytes, hence the same checksums (the
zip entries are dated 1980-01-01, the .deb's members the last commit's time).
"""

import argparse
import hashlib
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

# The SSM agent's architecture names (Go's GOARCH, amd64 reported as x86_64), by ELF e_machine.
ARCHES = {62: "x86_64", 183: "arm64"}
# Platforms whose hosts have dpkg, and the glibc Linux platforms that get the file tree. The SSM
# agent matches the platform name exactly, then "_any": there is no "_any" here, since it would
# also take Windows (whose agent looks for install.ps1, and counts a missing one a success).
DEB_PLATFORMS = ["debian", "ubuntu"]
TREE_PLATFORMS = [
    "amazon", "redhat", "centos", "rocky", "almalinux", "oracle", "fedora",
    "suse", "opensuse", "opensuseleap",
]
SCRIPTS = ["install.sh", "uninstall.sh", "update.sh", "validate.sh"]
# The zips' timestamps (zip's own epoch), so that rebuilding changes no checksum.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def fail(message):
    sys.exit(f"build.py: {message}")


def elf_arch(binary):
    head = binary.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        fail(f"{binary} is not an ELF binary")
    machine = int.from_bytes(head[18:20], "little")
    if machine not in ARCHES:
        fail(f"{binary} is for ELF machine {machine}, neither x86-64 nor AArch64")
    return ARCHES[machine]


def cargo_version():
    text = (REPO / "Cargo.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, re.M).group(1)


def add(archive, name, data, mode):
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def common(archive, deb, version):
    """The scripts, the version, and the glibc the binary needs (from the .deb's Depends)."""
    for name in SCRIPTS:
        add(archive, name, (HERE / name).read_bytes(), 0o755)
    add(archive, "version", f"{version}\n".encode(), 0o644)
    fields = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], check=True,
                            capture_output=True, text=True).stdout
    glibc = re.search(r"libc6 \(>= ([^)]+)\)", fields).group(1)
    add(archive, "glibc", f"{glibc}\n".encode(), 0o644)


def deb_zip(path, deb, version):
    with zipfile.ZipFile(path, "w") as archive:
        common(archive, deb, version)
        add(archive, "cwlite.deb", deb.read_bytes(), 0o644)


def tree_zip(path, deb, version, work):
    """The .deb's own content and control files, so that both kinds install the same."""
    tree = work / "tree"
    control = work / "control"
    subprocess.run(["dpkg-deb", "-x", deb, tree], check=True)
    subprocess.run(["dpkg-deb", "-e", deb, control], check=True)
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    with zipfile.ZipFile(path, "w") as archive:
        common(archive, deb, version)
        for name in ["postinst", "prerm", "postrm"]:
            add(archive, name, (control / name).read_bytes(), 0o755)
        add(archive, "conffiles", (control / "conffiles").read_bytes(), 0o644)
        # With the modes: an unzip may not keep them.
        listed = "".join(f"{p.stat().st_mode & 0o777:o} {p.relative_to(tree)}\n" for p in files)
        add(archive, "files.list", listed.encode(), 0o644)
        for p in files:
            add(archive, f"files/{p.relative_to(tree)}", p.read_bytes(), p.stat().st_mode & 0o777)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", action="append", required=True, metavar="ARCH=PATH",
                        help="a release binary, per architecture (x86_64, arm64)")
    parser.add_argument("--version", default=None,
                        help="the package version (Cargo.toml's by default); each upload needs a new one")
    parser.add_argument("--compress", default="xz", choices=["xz", "gzip"],
                        help="the .deb's compression")
    parser.add_argument("--out", required=True, type=pathlib.Path)
    args = parser.parse_args()
    version = args.version or cargo_version()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+~-]*", version):
        fail(f"version {version!r}: Debian versions take letters, digits and . + ~ -")

    binaries = {}
    for entry in args.bin:
        arch, _, path = entry.partition("=")
        binary = pathlib.Path(path)
        if arch not in ARCHES.values() or not binary.is_file():
            fail(f"--bin {entry}: give ARCH=PATH, ARCH one of {', '.join(ARCHES.values())}, PATH a file")
        found = elf_arch(binary)
        if found != arch:
            fail(f"--bin {entry}: {binary} is built for {found}, not {arch}")
        if arch in binaries:
            fail(f"--bin {entry}: {arch} given twice")
        binaries[arch] = binary

    args.out.mkdir(parents=True, exist_ok=True)
    packages = {}
    files = {}
    for arch, binary in sorted(binaries.items()):
        with tempfile.TemporaryDirectory() as work:
            work = pathlib.Path(work)
            deb = pathlib.Path(subprocess.run(
                ["sh", str(REPO / "packaging/deb/build.sh"), "--version", version,
                 "--compress", args.compress, str(binary), str(work)],
                check=True, capture_output=True, text=True).stdout.strip())
            for kind, platforms in [("deb", DEB_PLATFORMS), ("linux", TREE_PLATFORMS)]:
                name = f"cwlite-{kind}-{arch}.zip"
                zip_path = args.out / name
                if kind == "deb":
                    deb_zip(zip_path, deb, version)
                else:
                    tree_zip(zip_path, deb, version, work)
                files[name] = {"checksums": {"sha256": sha256(zip_path)}}
                for platform in platforms:
                    packages.setdefault(platform, {"_any": {}})["_any"][arch] = {"file": name}

    manifest = {
        "schemaVersion": "2.0",
        "publisher": "cwlite",
        "description": "cwlite, a small drop-in replacement for the Amazon CloudWatch Agent",
        "version": version,
        "packages": packages,
        "files": files,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(args.out / "manifest.json")


if __name__ == "__main__":
    main()
