#!/bin/sh
# cwlite's Distributor check. When this version is recorded as installed, AWS-ConfigureAWSPackage
# runs `sh validate.sh` and reinstalls only if it fails: a deleted or broken binary is put back
# by the next association run. CWLITE_ROOT: see install.sh.
set -eu
root=${CWLITE_ROOT:-}
root=${root%/}
"$root/usr/bin/cwlite" --version >/dev/null
[ -x "$root/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl" ]
