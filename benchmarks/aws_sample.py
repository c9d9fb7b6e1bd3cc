"""Secrets Manager calls of AWS's sample rotation Lambda, the baseline the bridge is held to.

Counted by reading ``SecretsManagerRotationTemplate/lambda_function.py`` of
https://github.com/aws-samples/aws-secrets-manager-rotation-lambdas at commit
b4b8eca63e1f61bbcfb18c291b640f4fc3b0deb8 (2025-02-25), for one rotation of a secret whose
new version is not staged yet. Secrets Manager invokes the function four times, once per
step, and every invocation starts in ``lambda_handler``:

* ``lambda_handler`` (every step): ``describe_secret`` (line 41), to check the token's
  stage: 4 calls over the four steps;
* ``createSecret``: ``get_secret_value`` AWSCURRENT (line 90), ``get_secret_value`` of the
  token's AWSPENDING (line 94, answered ResourceNotFound on a fresh rotation),
  ``get_random_password`` (line 100), ``put_secret_value`` (line 103): 4 calls;
* ``setSecret`` and ``testSecret``: no Secrets Manager call in the template (it raises
  ``NotImplementedError`` where the service-specific code goes; the complete samples read the
  pending secret there with ``get_secret_value``, which would add 1 or more per step);
* ``finishSecret``: ``describe_secret`` (line 161), ``update_secret_version_stage``
  (line 173): 2 calls.

Total: 10 calls, 5 of them DescribeSecret and 2 GetSecretValue; the ``RotateSecret`` that
starts a rotation (made by Secrets Manager's scheduler, or by whoever rotates on demand) is
not counted. The template keeps no state elsewhere, so it makes no DynamoDB calls.
"""

from __future__ import annotations

SOURCE = (
    "aws-samples/aws-secrets-manager-rotation-lambdas@b4b8eca "
    "SecretsManagerRotationTemplate/lambda_function.py"
)

ROTATION_CALLS: dict[str, int] = {
    "DescribeSecret": 5,
    "GetSecretValue": 2,
    "GetRandomPassword": 1,
    "PutSecretValue": 1,
    "UpdateSecretVersionStage": 1,
}
assert sum(ROTATION_CALLS.values()) == 10
