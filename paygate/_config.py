"""Configuration: a TOML file plus environment variables (pydantic-settings).

::

    store = "sqlite:///paygate.db"

    [retry]
    attempts = 4

    [accounts.card]
    provider = "payjp"
    methods = ["card"]
    secret_key = "${PAYJP_SECRET_KEY}"

Strings may use ``${NAME}`` (or ``${NAME:-default}``) to take a secret from the
environment. Environment variables also override any setting:
``PAYGATE_STORE``, ``PAYGATE_ACCOUNTS__CARD__SECRET_KEY``. Errors name the offending key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ._adapter import Provider, ProviderSettings
from ._errors import ConfigurationError, PaygateError
from ._redact import register_secret
from ._registry import provider_class
from ._retry import RetryPolicy

__all__ = ["AccountConfig", "LoadedConfig", "PaygateConfig", "load_config"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class RetrySettings(BaseModel):
    """The ``[retry]`` table."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=4, ge=1, le=20)
    deadline: float = Field(default=30.0, gt=0)
    wait_initial: float = Field(default=0.2, ge=0)
    wait_max: float = Field(default=5.0, ge=0)
    wait_jitter: float = Field(default=0.2, ge=0)
    max_retry_after: float = Field(default=30.0, ge=0)

    def policy(self) -> RetryPolicy:
        """As a `RetryPolicy`."""
        return RetryPolicy(
            attempts=self.attempts,
            deadline=self.deadline,
            wait_initial=self.wait_initial,
            wait_max=self.wait_max,
            wait_jitter=self.wait_jitter,
            max_retry_after=self.max_retry_after,
        )


class PaygateConfig(BaseSettings):
    """The whole configuration. Environment variables override the file."""

    model_config = SettingsConfigDict(
        env_prefix="PAYGATE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    store: str = "sqlite:///paygate.db"
    retry: RetrySettings = RetrySettings()
    webhook_max_body: int = Field(default=1_048_576, gt=0)
    accounts: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (passed as init values).
        return (env_settings, init_settings)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One validated account."""

    name: str
    provider: type[Provider]
    settings: ProviderSettings
    methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Validated configuration, ready for a Gateway."""

    store: str
    retry: RetryPolicy
    webhook_max_body: int
    accounts: Mapping[str, AccountConfig]


def _interpolate(value: Any, path: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None:
                if default is None:
                    raise ConfigurationError(f"environment variable {name} is not set", key=path)
                return default
            return found

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _read(source: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    if source is None:
        return {}
    if isinstance(source, Mapping):
        if not all(isinstance(k, str) for k in source):
            raise ConfigurationError("configuration keys must be strings", key="config")
        return dict(source)
    given: object = source  # callers may pass anything at run time
    if not isinstance(given, str | Path):
        raise ConfigurationError(
            "configuration must be a TOML file path or a mapping", key="config"
        )
    path = Path(source)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigurationError(f"config file not found: {path.name}", key="config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"not valid TOML: {exc}", key="config") from None
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL in the path
        raise ConfigurationError(
            f"config file cannot be read ({type(exc).__name__})", key="config"
        ) from None


def _first_error(exc: ValidationError, prefix: str) -> ConfigurationError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    return ConfigurationError(err["msg"], key=key)


def load_config(source: str | Path | Mapping[str, Any] | None = None) -> LoadedConfig:
    """Read, interpolate and validate a configuration (file path or mapping).

    >>> cfg = load_config({"store": "memory://", "accounts": {}})
    >>> cfg.store
    'memory://'
    """
    data = _interpolate(_read(source), "")
    try:
        config = PaygateConfig(**data)
    except ValidationError as exc:
        raise _first_error(exc, "") from None
    accounts: dict[str, AccountConfig] = {}
    for name, table in config.accounts.items():
        accounts[name] = _account(name, dict(table))
    return LoadedConfig(
        store=config.store,
        retry=config.retry.policy(),
        webhook_max_body=config.webhook_max_body,
        accounts=accounts,
    )


def _account(name: str, table: dict[str, Any]) -> AccountConfig:
    prefix = f"accounts.{name}"
    provider_name = table.pop("provider", None)
    if not isinstance(provider_name, str):
        raise ConfigurationError("missing provider", key=f"{prefix}.provider")
    cls = provider_class(provider_name, key=f"{prefix}.provider")
    methods = table.pop("methods", None)
    try:
        settings = cls.settings_model.model_validate(table)
    except ValidationError as exc:
        raise _first_error(exc, prefix) from None
    _register_secrets(settings)
    try:
        provider = cls(settings, account=name)
        offered = tuple(provider.capabilities().methods)
    except PaygateError:
        raise
    except Exception as exc:  # an adapter refusing its settings in its own words
        raise ConfigurationError(
            f"{provider_name} refused these settings ({type(exc).__name__})", key=prefix
        ) from None
    if methods is None:
        chosen = offered
    else:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ConfigurationError("must be a list of method names", key=f"{prefix}.methods")
        for method in methods:
            if method not in offered:
                raise ConfigurationError(
                    f"{provider_name} does not offer {method!r} (offers: {', '.join(offered)})",
                    key=f"{prefix}.methods",
                )
        chosen = tuple(methods)
    return AccountConfig(name=name, provider=cls, settings=settings, methods=chosen)


def _register_secrets(settings: BaseModel) -> None:
    from pydantic import SecretStr

    for field_name in type(settings).model_fields:
        value = getattr(settings, field_name)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
