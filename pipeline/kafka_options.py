"""aiokafka and Faust connection options (SASL, TLS) from `Settings`, in one place."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import faust

from pipeline.settings import Settings
from schemas.errors import ConfigurationError


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = settings.ssl_context()
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        password = settings.sasl_password
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def faust_credentials(settings: Settings) -> Any:
    """`broker_credentials` for faust.App, or None for PLAINTEXT."""
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL"):
        password = settings.sasl_password
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=password.get_secret_value() if password else None,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def check_credentials(settings: Settings, timeout_s: float = 30.0) -> None:
    """Fail fast, with what to fix, when Kafka refuses the configured TLS or SASL settings.

    Without this a worker with a wrong password dies in Faust's start-up with a traceback about
    "Unable to bootstrap". PLAINTEXT has nothing to check; an unreachable broker is left to the
    clients (they retry and report it as before)."""
    if settings.security_protocol == "PLAINTEXT":
        return
    asyncio.run(_first_contact(settings, timeout_s))


async def _first_contact(settings: Settings, timeout_s: float) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import (
        AuthenticationFailedError,
        KafkaError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    options = aiokafka_options(settings)
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host.strip("[]"), int(port), **options), timeout_s
            )
        except (SaslAuthenticationFailed, AuthenticationFailedError) as exc:
            raise ConfigurationError(
                f"Kafka at {server.strip()} refused the SASL credentials of user "
                f"{settings.sasl_username!r} ({settings.sasl_mechanism}: {exc}); check "
                "CXPULSE_SASL_USERNAME, CXPULSE_SASL_PASSWORD and CXPULSE_SASL_MECHANISM"
            ) from None
        except UnsupportedSaslMechanismError:
            raise ConfigurationError(
                f"Kafka at {server.strip()} does not offer SASL mechanism "
                f"{settings.sasl_mechanism}; set CXPULSE_SASL_MECHANISM to one it enables"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise ConfigurationError(
                f"the TLS certificate of Kafka at {server.strip()} is not trusted "
                f"({exc.verify_message}); set CXPULSE_SSL_CAFILE to the CA that signed it"
            ) from None
        except (OSError, KafkaError, TimeoutError, ValueError):
            continue  # not reachable now: the clients retry and say so
        conn.close()
        return
