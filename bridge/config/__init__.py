"""Configuration: one TOML file, validated once into frozen models."""

from bridge.config.consumer import ConsumerConfig
from bridge.config.durations import Duration, format_duration, parse_duration
from bridge.config.langsmith import LangSmithSettings
from bridge.config.load import (
    config_path,
    config_schema,
    load_any_config,
    load_config,
    parse_config,
    read_admin_key,
)
from bridge.config.model import (
    BridgeConfig,
    DynamoDBStateSettings,
    FileStateSettings,
    Policy,
    RunSettings,
)
from bridge.config.targets import AwsTarget, FileTarget, TargetConfig, VaultTarget
from bridge.config.vault import VaultAuth, VaultSettings, VaultStateSettings

__all__ = [
    "AwsTarget",
    "BridgeConfig",
    "ConsumerConfig",
    "Duration",
    "DynamoDBStateSettings",
    "FileStateSettings",
    "FileTarget",
    "LangSmithSettings",
    "Policy",
    "RunSettings",
    "TargetConfig",
    "VaultAuth",
    "VaultSettings",
    "VaultStateSettings",
    "VaultTarget",
    "config_path",
    "config_schema",
    "format_duration",
    "load_any_config",
    "load_config",
    "parse_config",
    "parse_duration",
    "read_admin_key",
]
