"""The CLI's own advice on a service error: the service's messages are neutral (no flag,
no command to run); the CLI adds what a person at a shell can do, from the error's
``advice`` key (console.service.errors.ADVICE_*)."""

from __future__ import annotations

from console.service.errors import ADVICE_LOGIN, ADVICE_LOGIN_OR_PASSWORD, ADVICE_PASSWORD, ServiceError


def message(problem: ServiceError) -> str:
    """The line the CLI prints for ``problem`` (its message, and the CLI's advice if any)."""
    user = problem.advice_user or "USER"
    if problem.advice == ADVICE_PASSWORD:
        return f"{problem.message} (--password-stdin, or run on a terminal)"
    if problem.advice == ADVICE_LOGIN:
        return f"{problem.message}: run `lifeboat login --user {user}`"
    if problem.advice == ADVICE_LOGIN_OR_PASSWORD:
        return f"{problem.message}: run `lifeboat login --user {user}` or pass --password-stdin"
    return problem.message
