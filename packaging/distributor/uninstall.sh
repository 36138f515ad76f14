#!/bin/sh
# cwlite's Distributor uninstall. AWS-ConfigureAWSPackage runs `sh uninstall.sh` as root in the
# unpacked package of the installed version: for an Uninstall, and before the next version's
# install.sh on an upgrade. It cannot tell which, so it leaves the ctl's restart marker when
# the daemon runs (the stock package's prep-restart), and the next install.sh starts it again.
#
# It removes the program, not what the operator made: the configuration under /etc/cwlite (and
# the credentials), the state under /var/lib/cwlite, and the unit's enablement stay, as with
# `dpkg -r`. CWLITE_ROOT: see install.sh.
set -eu
cd "$(dirname "$0")"
root=${CWLITE_ROOT:-}
root=${root%/}

if [ -x "$root/usr/bin/cwlite" ]; then
    "$root/usr/bin/cwlite" ctl ${root:+--root "$root"} -a prep-restart
fi

if [ -f cwlite.deb ]; then
    # Removed already (config-files) or never installed is done; half-installed is removed.
    status=$(dpkg-query ${root:+--admindir="$root/var/lib/dpkg"} -W -f='${Status}' cwlite 2>/dev/null || true)
    if [ -n "$status" ] && [ "${status##* }" != config-files ] && [ "${status##* }" != not-installed ]; then
        if [ -n "$root" ]; then
            dpkg --root="$root" --force-script-chrootless --log=/dev/null -r cwlite
        else
            dpkg -r cwlite
        fi
    fi
    exit 0
fi

record=$root/var/lib/cwlite-package
[ -f "$record/files" ] || exit 0
DPKG_ROOT=$root sh ./prerm remove
# What the installed version put there, whichever version this script is.
while read -r _mode path; do
    if ! grep -qxF "/$path" conffiles; then
        rm -f "$root/$path"
        # And the directories left empty, as dpkg removes its own.
        (cd "$root/" && rmdir -p --ignore-fail-on-non-empty "$(dirname "$path")" 2>/dev/null) || true
    fi
done <"$record/files"
rm -f "$record/files"
DPKG_ROOT=$root sh ./postrm remove
