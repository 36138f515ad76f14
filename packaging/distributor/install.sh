#!/bin/sh
# cwlite's Distributor install. AWS-ConfigureAWSPackage (the SSM agent's aws:configurePackage)
# runs `sh install.sh` as root in the unpacked package: after the previous version's
# uninstall.sh on an upgrade, and again for a rollback when a newer install failed.
#
# The package holds either cwlite.deb (Debian, Ubuntu), installed with dpkg, or a file tree
# (files/, and the .deb's maintainer scripts and conffiles), copied in place for hosts without
# dpkg. Either way the maintainer scripts do the rest: the stock paths, the unit enabled on a
# first install, and a daemon that ran before the upgrade started again (the ctl's restart
# marker, which uninstall.sh left). A marker still there afterwards means that daemon did not
# start again: the install fails, so that the SSM agent rolls back to the previous version.
#
# CWLITE_ROOT installs under another root instead of / (a scratch root, for tests), without
# systemd.
set -eu
cd "$(dirname "$0")"
root=${CWLITE_ROOT:-}
root=${root%/}
marker=$root/etc/cwlite/restart
host="${BWS_PLATFORM_NAME:-this host} ${BWS_PLATFORM_VERSION:-}"

restarted() {
    if [ -e "$marker" ]; then
        echo "cwlite: installed, but the daemon that ran before did not start again (above); the next install or `cwlite ctl -a cond-restart` tries again" >&2
        exit 1
    fi
}

if [ -f cwlite.deb ]; then
    if ! command -v dpkg >/dev/null 2>&1; then
        echo "cwlite: this is the package for dpkg hosts, and $host has no dpkg: the manifest sent the wrong file" >&2
        exit 1
    fi
    # Checked first: dpkg would unpack, then leave the package unconfigured for apt to remove.
    libc=$(dpkg-query ${root:+--admindir="$root/var/lib/dpkg"} -W -f='${Version}' libc6 2>/dev/null || true)
    if [ -z "$libc" ] || ! dpkg --compare-versions "$libc" ge "$(cat glibc)"; then
        echo "cwlite: $host has libc6 ${libc:-(none)}, and cwlite needs $(cat glibc) or newer" >&2
        exit 1
    fi
    # Non-interactive: an operator's common-config.toml stays (--force-confold) whatever the
    # new version ships, and an apt run that holds the lock (unattended-upgrades at boot) is
    # waited for, up to 10 minutes.
    set -- --force-confdef --force-confold --log=/dev/null -i cwlite.deb
    if [ -n "$root" ]; then set -- --root="$root" --force-script-chrootless "$@"; fi
    tries=0
    until out=$(dpkg "$@" 2>&1); do
        echo "$out"
        case "$out" in
            *"lock"*) ;;
            *) exit 1 ;;
        esac
        tries=$((tries + 1))
        if [ "$tries" -ge 60 ]; then
            echo "cwlite: dpkg stayed locked for 10 minutes" >&2
            exit 1
        fi
        sleep 10
    done
    echo "$out"
    restarted
    exit 0
fi

# Only a binary this host can run replaces the one there.
chmod 755 files/usr/bin/cwlite
if ! version=$(files/usr/bin/cwlite --version 2>&1); then
    echo "cwlite: the binary does not run on $host (it needs glibc $(cat glibc) or newer): $version" >&2
    exit 1
fi
# One of the two: the stock agent, or cwlite's .deb, owns the same paths.
for package in amazon-cloudwatch-agent cwlite; do
    if command -v dpkg-query >/dev/null 2>&1 &&
        dpkg-query ${root:+--admindir="$root/var/lib/dpkg"} -W -f='${Status}' "$package" 2>/dev/null | grep -q ' installed$'; then
        echo "cwlite: the package $package is installed with dpkg here; remove it first, or send this host the .deb" >&2
        exit 1
    fi
done
if [ -z "$root" ] && command -v rpm >/dev/null 2>&1 && rpm -q amazon-cloudwatch-agent >/dev/null 2>&1; then
    echo "cwlite: the stock agent (rpm amazon-cloudwatch-agent) is installed; remove it first: both own its ctl command" >&2
    exit 1
fi
record=$root/var/lib/cwlite-package
previous=$(cat "$record/version" 2>/dev/null || true)
ours() { [ -f "$record/files" ] && cut -d' ' -f2- "$record/files" | grep -qxF "$1"; }
conffile() { grep -qxF "/$1" conffiles; }
# A file at one of the paths that cwlite did not put there (the stock agent's ctl) stays.
while read -r _mode path; do
    if { [ -e "$root/$path" ] || [ -L "$root/$path" ]; } && ! ours "$path" && ! conffile "$path"; then
        echo "cwlite: /$path is not cwlite's; remove what installed it first" >&2
        exit 1
    fi
done <files.list

while read -r mode path; do
    dest=$root/$path
    # An operator's file stays, as dpkg keeps a changed conffile.
    if conffile "$path" && [ -e "$dest" ]; then
        continue
    fi
    mkdir -p "$(dirname "$dest")"
    # A fresh name beside it, then renamed over it: no link followed, and a running daemon
    # keeps its binary's old inode.
    new=$(mktemp "$dest.XXXXXX")
    cat "files/$path" >"$new"
    chmod "$mode" "$new"
    mv -f "$new" "$dest"
done <files.list
# What the previous version had and this one has not (an in-place update).
if [ -f "$record/files" ]; then
    cut -d' ' -f2- "$record/files" | while read -r path; do
        if ! cut -d' ' -f2- files.list | grep -qxF "$path" && ! conffile "$path"; then
            rm -f "$root/$path"
        fi
    done
fi
mkdir -p "$record"
cp files.list "$record/files"
cat version >"$record/version"
DPKG_ROOT=$root sh ./postinst configure "$previous"
restarted
