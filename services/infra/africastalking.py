"""Africa's Talking's SMS protocol, as both sides need it: notify reads the send API's status
codes, the gateway checks and maps its delivery reports. Pure: no I/O.

Africa's Talking signs nothing it posts. Its delivery-report URL (set once in its dashboard,
not per message) therefore carries a secret of ours as its last path segment, compared in
constant time: `<public base URL>/webhooks/africastalking/delivery/<secret>`.
"""

from __future__ import annotations

import hmac

MESSAGING_PATH = "/version1/messaging"
DELIVERY_PATH_PREFIX = "/webhooks/africastalking/delivery/"
DELIVERY_ROUTE = DELIVERY_PATH_PREFIX + "{secret}"

# SMSMessageData.Recipients[].statusCode: the provider has the message ...
ACCEPTED = frozenset({100, 101, 102})  # Processed, Sent, Queued
# ... or says it will not send it (the 4xx for this request, whatever is tried again) ...
REFUSED = {
    401: "RiskHold",
    402: "InvalidSenderId",
    403: "InvalidPhoneNumber",
    404: "UnsupportedNumberType",
    405: "InsufficientBalance",
    406: "UserInBlacklist",
    407: "CouldNotRoute",
    409: "DoNotDisturbRejection",
}
# ... or failed on its side without sending it: worth trying again (or elsewhere).
FAILED = {500: "InternalServerError", 501: "GatewayError", 502: "RejectedByGateway"}
# The patient blocked messages from this sender: like a STOP reply, never sent elsewhere.
OPTED_OUT = 406

# Delivery-report `status` values mapped onto the contract's receipt statuses (`SmsReceipt`).
_RECEIPT_STATUS = {
    "sent": "sent",  # sent by Africa's Talking's network
    "submitted": "sent",  # submitted to the mobile operator
    "buffered": "sent",  # queued by the operator (the phone is off or out of reach)
    "success": "delivered",  # on the handset (final)
    "failed": "undelivered",  # could not reach the handset (final)
    "rejected": "failed",  # refused by the operator (final)
}

# failureReason values, in words lab staff can act on.
FAILURE_MEANINGS = {
    "InsufficientCredit": "the subscriber has too little airtime for this service",
    "InvalidLinkId": "invalid link id for an on-demand service",
    "UserIsInactive": "the number is inactive or deactivated by its operator",
    "UserInBlackList": "the recipient has blocked messages from this sender",
    "UserAccountSuspended": "the number is suspended by its operator",
    "NotNetworkSubcriber": "the number does not belong to that operator",
    "UserNotSubscribedToProduct": "the recipient is not subscribed to this service",
    "UserDoesNotExist": "unknown number",
    "DeliveryFailure": "unknown delivery failure",
}


def receipt_status(status: str) -> str | None:
    """The `SmsReceipt` status of a delivery report's status; None for an unknown one."""
    return _RECEIPT_STATUS.get(status.strip().lower())


def failure_meaning(reason: str) -> str | None:
    return FAILURE_MEANINGS.get(reason)


def messaging_url(base_url: str) -> str:
    return base_url.rstrip("/") + MESSAGING_PATH


def delivery_report_url(public_base_url: str, secret: str) -> str:
    """The URL to enter in Africa's Talking's dashboard (SMS -> Callback URLs -> Delivery)."""
    return public_base_url.rstrip("/") + DELIVERY_PATH_PREFIX + secret


def secret_valid(expected: str, given: str) -> bool:
    """Whether a delivery report's path carries our secret (never, when none is set)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
