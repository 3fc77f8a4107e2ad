"""The service layer: the one API that the CLI and the TUI both call.

* ``errors``: ServiceError and its subclasses (each knows its CLI exit code), ``translate``
  and ``boundary`` (the one place a failure becomes a ServiceError);
* ``results``: typed results (``as_dict()`` is the CLI's --json shape);
* ``core``: the ``Service`` class (store and client plumbing, the mode, the public methods);
* ``trading``, ``access``, ``book``, ``recovery``: the work, as functions of the Service.

The faces import from here: ``from console.service import Service, ServiceError, ...``.
"""

from console.service.core import DEFAULT_BACKEND, Service, dr_site
from console.service.errors import (
    ADVICE_LOGIN,
    ADVICE_LOGIN_OR_PASSWORD,
    ADVICE_PASSWORD,
    Denied,
    MainUnavailable,
    NotAccepted,
    NotLoggedIn,
    Refused,
    RejectedByMain,
    ServiceError,
    StoreProblem,
    boundary,
    translate,
)
from console.service.results import (
    ActionResult,
    Lockout,
    LoginResult,
    ModeDecision,
    ModeState,
    PolicyState,
    ReplayOutcome,
    UserReleased,
    sends,
)
from sync.trading.policy import OrderTicket  # what Service.place takes: the faces build it
from sync.verdict import CLEAN as VERDICT_CLEAN  # a replay report's verdict (the screens draw it)
from sync.verdict import headline as report_headline
from sync.verdict import verdict as report_verdict

__all__ = [
    "ADVICE_LOGIN",
    "ADVICE_LOGIN_OR_PASSWORD",
    "ADVICE_PASSWORD",
    "DEFAULT_BACKEND",
    "VERDICT_CLEAN",
    "ActionResult",
    "Denied",
    "Lockout",
    "LoginResult",
    "MainUnavailable",
    "ModeDecision",
    "ModeState",
    "NotAccepted",
    "NotLoggedIn",
    "OrderTicket",
    "PolicyState",
    "Refused",
    "RejectedByMain",
    "ReplayOutcome",
    "Service",
    "ServiceError",
    "StoreProblem",
    "UserReleased",
    "boundary",
    "dr_site",
    "report_headline",
    "report_verdict",
    "sends",
    "translate",
]
