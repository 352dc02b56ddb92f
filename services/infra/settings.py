"""All configuration, from the environment, with embedded defaults for one machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RESULTFLOW_", extra="ignore", populate_by_name=True
    )

    mongodb_uri: str = Field(
        "mongodb://127.0.0.1:27018/?retryWrites=false&directConnection=true",
        validation_alias="MONGODB_URI",
    )
    mongodb_database: str = "resultflow"
    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", validation_alias="AMQP_URL")

    lab_id: str = "demo-lab"
    lab_name: str = "ResultFlow Demo Laboratory"
    lab_address: str = "1 Example Street, Exampletown"
    lab_phone: str = "+44 20 7946 0000"
    default_region: str = "GB"  # for phone numbers written without a country code

    public_base_url: str = "http://127.0.0.1:8080"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    cookie_secure: bool = False  # True behind HTTPS

    access_link_ttl_hours: int = 24 * 30
    release_poll_seconds: float = 5.0  # how often notify looks for holds whose time is up
    portal_max_attempts: int = 5

    sms_provider: str = "outbox"  # "outbox" (development) or "twilio"
    sms_sender: str = "ResultFlow"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_base_url: str = "https://api.twilio.com"

    soffice_path: str = "/usr/bin/soffice"
    convert_timeout_seconds: float = 60.0
    convert_restart_every: int = 500  # LibreOffice grows ~150 kB per document
    work_dir: Path = Path("/tmp/resultflow")  # noqa: S108 - per-process profiles live below

    prefetch: int = 4
    retry_backoff_seconds: float = 1.0  # first retry after 1 s, then 2, 4, 8


@lru_cache
def get_settings() -> Settings:
    return Settings()
