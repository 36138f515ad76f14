#!/bin/sh
# cwlite's Distributor install. AWS-ConfigureAWSPackage (the SSM agent's aws:configurePackage)
# runs `sh install.sh` as root in the unpacked package: after the previous version's
# uninstall.sh on an upgrade, and again for a rollback when a newer install failed.
#
# The package holds either cwlite.deb (Debian, Ubuntu), installed with dpkg, or a file tree
# (files/, and the .deb's maintainer scripts and conffiles), copied in place for hosts without
# dpkg. Either way the maintainer scripts do the rest: the stock paths, the unit enabled on a
# first install, and a daemon that ran before the upgrade started again (the ctl's restart
# marker, which uninstall.sh left).
#
# CWLITE_ROOT installs under another root instead of / (a scratch root, for tests), without
# systemd.
set -eu
cd "$(dirname "$0")"
root=${CWLITE_ROOT:-}
root=${root%/}

if [ -f cwlite.deb ]; then
    if ! command -v dpkg >/dev/null 2>&1; then
        echo "cwlite: this is the package for dpkg hosts, and ${BWS_PLATFORM_NAME:-this host} has no dpkg: the manifest sent the wrong file" >&2
        exit 1
    fi
    if [ -n "$root" ]; then
        dpkg --root="$root" --force-script-chrootless --log=/dev/null -i cwlite.deb
    else
        dpkg -i cwlite.deb
    fi
    exit 0
fi

# Only a binary this host can run replaces the one there.
chmod 755 files/usr/bin/cwlite
if ! version=$(files/usr/bin/cwlite --version 2>&1); then
    echo "cwlite: the binary does not run on ${BWS_PLATFORM_NAME:-this host} ${BWS_PLATFORM_VERSION:-} (it needs glibc $(cat glibc) or newer): $version" >&2
    exit 1
fi
record=$root/var/lib/cwlite-package
previous=$(cat "$record/version" 2>/dev/null || true)
while read -r mode path; do
    dest=$root/$path
    # An operator's file stays, as dpkg keeps a changed conffile.
    if grep -qx "/$path" conffiles && [ -e "$dest" ]; then
        continue
    fi
    mkdir -p "$(dirname "$dest")"
    # Beside it, then renamed over it: a running daemon keeps its binary's old inode.
    cp "files/$path" "$dest.cwlite-new"
    chmod "$mode" "$dest.cwlite-new"
    mv -f "$dest.cwlite-new" "$dest"
done <files.list
mkdir -p "$record"
cp files.list "$record/files"
cat version >"$record/version"
DPKG_ROOT=$root sh ./postinst configure "$previous"
