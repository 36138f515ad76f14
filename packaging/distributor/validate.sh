#!/bin/sh
# cwlite's Distributor check. When this version is recorded as installed, AWS-ConfigureAWSPackage
# runs `sh validate.sh` and reinstalls only if it fails: a deleted or broken binary, or a .deb
# that dpkg did not finish configuring, is put right by the next association run.
# CWLITE_ROOT: see install.sh.
set -eu
cd "$(dirname "$0")"
root=${CWLITE_ROOT:-}
root=${root%/}
"$root/usr/bin/cwlite" --version >/dev/null
[ -x "$root/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl" ]
if [ -f cwlite.deb ]; then
    [ "$(dpkg-query ${root:+--admindir="$root/var/lib/dpkg"} -W -f='${Status}' cwlite)" = "install ok installed" ]
fi
