"""All configuration, from the environment, with embedded defaults for one machine."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.infra import second_check


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
    # Declare the RabbitMQ topology and create MongoDB indexes when a service starts. compose
    # sets it false: `resultflow broker declare` and `resultflow database indexes` run once as
    # administrators, so no service's own user needs configure or createIndex rights.
    setup_on_start: bool = True

    lab_id: str = "demo-lab"
    lab_ids: str = ""  # other labs (comma-separated) whose results ingest accepts too
    lab_name: str = "ResultFlow Demo Laboratory"
    lab_address: str = "1 Example Street, Exampletown"
    lab_phone: str = "+44 20 7946 0000"
    default_region: str = "GB"  # for phone numbers written without a country code
    # The lab's language (ISO 639-1): patients with none, or one we do not ship, get this.
    default_language: str = "en"

    public_base_url: str = "http://127.0.0.1:8080"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    # The HL7 v2 MLLP listener (`services.ingest.mllp_main`): ORU^R01 from the lab's LIS.
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    cookie_secure: bool = False  # True behind HTTPS
    # Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed: the
    # audit trail records the address before them. Empty: the peer's address is recorded.
    trusted_proxies: str = ""
    # `Authorization: Bearer <this>` opens /readyz and /metrics; empty: they answer no one.
    metrics_token: str = Field("", repr=False)
    metrics_cache_seconds: float = 15.0  # /metrics counts at most this often
    # Every process's operations port (/healthz, /readyz, /metrics; services/infra/health.py).
    # 0: a free port, recorded for `resultflow status`. Never published outside the host.
    health_host: str = "127.0.0.1"
    health_port: int = 0
    process_name: str = ""  # this process in `resultflow status` (default: its service)
    session_idle_minutes: int = 30  # a staff session ends after this long without a request
    session_max_hours: int = 12  # and this long after login, whatever
    # Roles that must use a second factor (TOTP); comma-separated. The others may not set
    # one up: a lab that wants MFA for everyone lists every role.
    mfa_required_roles: str = "admin,reviewer"

    access_link_ttl_hours: int = 24 * 30
    release_poll_seconds: float = 5.0  # how often notify looks for holds whose time is up
    # One reminder SMS when a link is still unopened this many days before it expires; 0: off.
    reminder_days_before_expiry: int = 3
    reminder_poll_seconds: float = 60.0  # how often notify looks for reminders due
    portal_max_attempts: int = 5
    # The portal's second check (`services.infra.second_check`): date_of_birth, pin (from the
    # collection receipt) or sms_code; per lab "lab-b=pin,lab-c=sms_code" overrides it.
    second_check: Literal["date_of_birth", "pin", "sms_code"] = "date_of_birth"
    second_check_by_lab: str = ""
    # The key of the HMAC kept in place of receipt PINs and texted codes; set it in production.
    second_check_secret: str = Field("", repr=False)
    access_code_sends_per_hour: int = 3  # texted codes per link per hour
    # The lab's local time zone (IANA name): quiet hours are in it, pages show times in it.
    time_zone: str = "UTC"
    # No SMS between these local hours ("21:00-08:00"); held SMS go out after, in order.
    # Empty: off (the embedded default, so a demo at night still sends).
    quiet_hours: str = ""
    quiet_hours_poll_seconds: float = 30.0  # how often notify looks for held SMS now due

    # "outbox" (development), "twilio" or "africastalking"; a comma-separated list
    # ("twilio,africastalking", also as RESULTFLOW_SMS_PROVIDERS) fails over in that order.
    sms_provider: str = Field(
        "outbox",
        validation_alias=AliasChoices("RESULTFLOW_SMS_PROVIDERS", "RESULTFLOW_SMS_PROVIDER"),
    )
    sms_sender: str = "ResultFlow"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_base_url: str = "https://api.twilio.com"
    africastalking_username: str = ""  # "sandbox" with the sandbox base URL
    africastalking_api_key: str = Field("", repr=False)
    africastalking_sender: str = ""  # a registered short code or sender id; empty: AT's default
    # Sandbox: https://api.sandbox.africastalking.com
    africastalking_base_url: str = "https://api.africastalking.com"
    # Africa's Talking signs nothing: its delivery-report URL carries this secret as its last
    # path segment (/webhooks/africastalking/delivery/<secret>); empty: the webhook answers 403.
    africastalking_callback_secret: str = Field("", repr=False)
    # A provider's 429 Retry-After up to this many seconds is waited out, then it is asked
    # again; a longer one counts as a refusal (the next provider, or a later redelivery).
    sms_rate_limit_max_wait_seconds: float = 20.0
    sms_request_timeout_seconds: float = 30.0  # one provider request; past it: outcome unknown
    # NotifyPatient's redeliveries after a refusal: 5, 10, 20, 30 s apart, so every provider
    # being down for a minute is ridden out before the report is failed.
    sms_retry_backoff_seconds: float = 5.0

    soffice_path: str = "/usr/bin/soffice"
    convert_timeout_seconds: float = 60.0
    convert_restart_every: int = 500  # LibreOffice grows ~150 kB per document
    work_dir: Path = Path("/tmp/resultflow")  # noqa: S108 - per-process profiles live below

    prefetch: int = 4
    retry_backoff_seconds: float = 1.0  # first retry after 1 s, then 2, 4, 8

    @field_validator("second_check_by_lab")
    @classmethod
    def _known_checks(cls, value: str) -> str:
        second_check.parse_by_lab(value)  # a misspelt lab=check stops the service at start
        return value

    @property
    def configured_lab_ids(self) -> frozenset[str]:
        """The labs this deployment serves: `lab_id` and any in `lab_ids`."""
        others = (lab.strip() for lab in self.lab_ids.split(","))
        return frozenset({self.lab_id, *(lab for lab in others if lab)})


@lru_cache
def get_settings() -> Settings:
    return Settings()
