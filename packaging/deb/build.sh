#!/bin/sh
# Builds cwlite's .deb with dpkg-deb alone: the files packaging/files lists, the binary given,
# and the maintainer scripts beside this one (which also serve the Distributor package's file
# tree, so they run without dpkg too). The architecture and the glibc the package depends on
# are read from the binary itself, so a binary built for arm64 makes an arm64 package.
#
#   packaging/deb/build.sh [--version V] [--compress xz|gzip] BINARY OUT_DIR
#
# BINARY is a release build (`cargo build --release`: target/release/cwlite, stripped).
# Prints the path of the package made: OUT_DIR/cwlite_<version>_<arch>.deb.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
compress=xz
while [ $# -gt 2 ]; do
    case "$1" in
        --version) version=$2; shift 2 ;;
        --compress) compress=$2; shift 2 ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -eq 2 ] || { echo "usage: $0 [--version V] [--compress xz|gzip] BINARY OUT_DIR" >&2; exit 2; }
binary=$1
out=$2
[ -f "$binary" ] || { echo "build.sh: $binary: no such file" >&2; exit 1; }

# ELF e_machine, at offset 18: 62 is x86-64, 183 AArch64.
case "$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' ')" in
    62) arch=amd64 ;;
    183) arch=arm64 ;;
    *) echo "build.sh: $binary is not an x86-64 or AArch64 ELF binary" >&2; exit 1 ;;
esac
# The newest glibc symbol version the binary needs (readelf reads any architecture).
glibc=$(readelf --version-info -W "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
[ -n "$glibc" ] || { echo "build.sh: $binary names no glibc version; is it a static binary?" >&2; exit 1; }
depends="libc6 (>= $glibc)"
if readelf -d "$binary" | grep -q 'NEEDED.*libgcc_s'; then
    depends="$depends, libgcc-s1 | libgcc1"
fi

# Reproducible: every file's time is the last commit's (dpkg-deb clamps to it).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/DEBIAN" "$stage/usr/bin"
install -m 755 "$binary" "$stage/usr/bin/cwlite"
: >"$stage/DEBIAN/conffiles"
grep -v '^#' "$repo/packaging/files" | while read -r mode source dest flag; do
    [ -n "$mode" ] || continue
    install -D -m "$mode" "$repo/$source" "$stage/$dest"
    if [ "$flag" = conffile ]; then echo "/$dest" >>"$stage/DEBIAN/conffiles"; fi
done
for script in postinst prerm postrm; do
    install -m 755 "$here/$script" "$stage/DEBIAN/$script"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) >"$stage/DEBIAN/md5sums"

description=$(sed -n 's/^description = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
cat >"$stage/DEBIAN/control" <<EOF
Package: cwlite
Version: $version
Architecture: $arch
Maintainer: cwlite developers <cwlite@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Conflicts: amazon-cloudwatch-agent
Replaces: amazon-cloudwatch-agent
Section: admin
Priority: optional
Description: $description
 cwlite collects host metrics into the CWAgent namespace and tails log files into
 CloudWatch Logs, reading the Amazon CloudWatch Agent's own JSON configuration and
 common-config.toml unchanged. It installs the stock agent's control command,
 /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl, so that the SSM
 documents and the documented commands drive it.
EOF

mkdir -p "$out"
deb="$out/cwlite_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compress" --build "$stage" "$deb" >/dev/null
echo "$deb"
