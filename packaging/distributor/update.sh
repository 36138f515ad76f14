#!/bin/sh
# cwlite's Distributor in-place update (an association with installationType "In-place
# update" runs `sh update.sh` of the new version instead of the old uninstall.sh and the new
# install.sh): the restart marker when the daemon runs, then this version's install.sh, which
# replaces the files in place (dpkg -i, or the tree over the recorded one) and starts the
# daemon again. CWLITE_ROOT: see install.sh.
set -eu
cd "$(dirname "$0")"
root=${CWLITE_ROOT:-}
root=${root%/}
if [ -x "$root/usr/bin/cwlite" ]; then
    "$root/usr/bin/cwlite" ctl ${root:+--root "$root"} -a prep-restart
fi
exec sh ./install.sh
