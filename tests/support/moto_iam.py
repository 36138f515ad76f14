"""Prepares a moto server of a test's own for least-privilege tests: IAM users with inline
policies and access keys, SSM parameters, then turns moto's IAM enforcement on, so that every
later request is checked against the signing user's policies (and its signature).

Usage: moto_iam.py <moto url> < {"users": {name: [actions]}, "parameters": [{"name", "value", "type"}]}
Prints {name: {"key": ..., "secret": ...}}.
"""

import json
import sys
import urllib.request

import boto3


def main() -> None:
    url = sys.argv[1]
    spec = json.load(sys.stdin)
    session = boto3.session.Session(
        aws_access_key_id="setup", aws_secret_access_key="setup", region_name="eu-west-1"
    )
    iam = session.client("iam", endpoint_url=url)
    ssm = session.client("ssm", endpoint_url=url)
    keys = {}
    for name, actions in spec.get("users", {}).items():
        iam.create_user(UserName=name)
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        keys[name] = {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    for parameter in spec.get("parameters", []):
        ssm.put_parameter(
            Name=parameter["name"], Value=parameter["value"], Type=parameter.get("type", "String")
        )
    # From here on, moto checks every request against the signing user's policies.
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request).read()
    json.dump(keys, sys.stdout)


if __name__ == "__main__":
    main()
