"""``/openapi.json``: the OpenAPI 3.0 document of the web app's JSON API, written by hand.

Hand-written rather than generated, so that it says what the handlers really answer (every
status code, the error shape, which keys may be ``null``); ``tests/web/test_openapi.py`` runs
schemathesis against it over a store of real reports, so a handler that drifts from it fails.
The pages themselves (HTML) are not part of it.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mtasts._version import __version__
from mtasts.web.reports import CSV_TABLES, MAX_DAYS

__all__ = ["openapi_document", "openapi_routes"]

_NULLABLE_STRING: Final = {"type": "string", "nullable": True}
_DAY: Final = {"type": "string", "format": "date"}
_COUNT: Final = {"type": "integer", "minimum": 0}
_RATE: Final = {"type": "number", "minimum": 0, "maximum": 1, "nullable": True}
_TIME: Final = {"type": "string", "format": "date-time"}
_ACTIONS: Final = ("apply", "enforce", "retire")  # mtasts.web.actions.ActionKind


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], *, closed: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": not closed,
    }


def _counts() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": _COUNT}


_SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {"type": "string", "description": "stable, English"},
                    "message": {"type": "string"},
                }
            )
        }
    ),
    "Totals": _object({"successful": _COUNT, "failed": _COUNT, "success_rate": _RATE}),
    "Readiness": _object(
        {
            "policy_domain": _NULLABLE_STRING,
            "verdict": {
                "type": "string",
                "enum": ["ready", "almost", "not-ready", "too-few-sessions", "no-policy-seen", "no-data"],
            },
            "explanation": {"type": "string"},
            "since": _DAY,
            "until": _DAY,
            "total_successful": _COUNT,
            "total_failure": _COUNT,
            "success_rate": _RATE,
        }
    ),
    "Day": _object({"day": _DAY, "successful": _COUNT, "failed": _COUNT, "success_rate": _RATE}),
    "DomainTotals": _object(
        {
            "policy_domain": _NULLABLE_STRING,
            "successful": _COUNT,
            "failed": _COUNT,
            "success_rate": _RATE,
            "readiness": {**_ref("Readiness"), "nullable": True},
        }
    ),
    "Sender": _object(
        {
            "policy_domain": _NULLABLE_STRING,
            "organization_name": {"type": "string"},
            "failed_sessions": _COUNT,
            "successful_sessions": _COUNT,
            "first_failure": _DAY,
            "last_failure": _DAY,
            "result_types": _counts(),
            "sending_ips": _counts(),
            "receiving_mxs": _counts(),
            "reasons": {"type": "array", "items": {"type": "string"}},
            "advice": {"type": "string"},
        }
    ),
    "Reporter": _object(
        {
            "organization_name": {"type": "string"},
            "last_report": _DAY,
            "days_silent": _COUNT,
            "days_reported": _COUNT,
            "domains": {"type": "array", "items": {"type": "string"}},
            "successful": _COUNT,
            "failed": _COUNT,
            "success_rate": _RATE,
        }
    ),
    "Reports": {
        **_object(
            {
                "domain": _NULLABLE_STRING,
                "days": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "nullable": True},
                "since": {**_DAY, "nullable": True},
                "until": _DAY,
                "store": {"type": "string", "description": "the store, as a person should see it (no password)"},
                "missing": {**_NULLABLE_STRING, "description": "why there is no data at all (no database yet)"},
                "totals": _ref("Totals"),
                "double_counted": {
                    **_ref("Totals"),
                    "description": "sts sessions left out: the same report counted them under tlsa",
                },
                "daily": {"type": "array", "items": _ref("Day")},
                "domains": {"type": "array", "items": _ref("DomainTotals")},
                "by_policy_type": {"type": "object", "additionalProperties": _ref("Totals")},
                "by_result_type": _counts(),
                "by_organization": {"type": "object", "additionalProperties": _ref("Totals")},
                "by_receiving_mx": _counts(),
                "by_sending_ip": _counts(),
                "failing_senders": {"type": "array", "items": _ref("Sender")},
                "reporters": {"type": "array", "items": _ref("Reporter")},
            }
        ),
        "description": "What the stored TLS reports say for the selection (see docs/web.md)",
    },
    "Served": _object(
        {
            "domain": {"type": "string"},
            "policy_id": {"type": "string"},
            "sha256": {"type": "string"},
            "mode": {"type": "string", "enum": ["testing", "enforce", "none"]},
            "max_age": _COUNT,
            "from": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time", "nullable": True},
            "forced_reason": _NULLABLE_STRING,
        }
    ),
    "Rollout": {
        **_object(
            {
                "domain": {"type": "string"},
                "stage": {"type": "string", "enum": ["draft", "testing", "enforce", "retiring", "removed"]},
                "configured": {"type": "string", "nullable": True},
                "current": {**_ref("Served"), "nullable": True},
                "guards": {"type": "array", "items": {"type": "object"}},
                "next": {"type": "string"},
                "next_at": {"type": "string", "format": "date-time", "nullable": True},
            },
            closed=False,
        ),
        "description": "The JSON of 'mtasts publish status --json' for the domain",
    },
    "TrendDay": _object(
        {
            "day": _DAY,
            "successful": _COUNT,
            "failed": _COUNT,
            "success_rate": _RATE,
            "policy_id": _NULLABLE_STRING,
            "mode": _NULLABLE_STRING,
            "mx": {"type": "array", "items": {"type": "string"}},
            "policy_changed": {"type": "boolean"},
        }
    ),
    "Domain": _object(
        {
            "domain": {"type": "string"},
            "live": _object({"check_url": {"type": "string"}, "api_check_url": {"type": "string"}}),
            "rollout": {**_ref("Rollout"), "nullable": True},
            "history": {"type": "array", "items": _ref("Served")},
            "trend": {"type": "array", "items": _ref("TrendDay")},
            "reports": _ref("Reports"),
            "monitor": {
                **_ref("Monitor"),
                "nullable": True,
                "description": "mtasts monitor's checks and events (null: the store keeps no monitor history)",
            },
            "notes": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "MonitorRun": _object(
        {
            "checked_at": _TIME,
            "status": {"type": "string", "enum": ["ok", "warning", "error", "unknown"]},
            "conclusive": {"type": "boolean"},
            "inconclusive_reason": {"type": "string"},
            "elapsed_seconds": {"type": "number", "minimum": 0},
            "record_id": _NULLABLE_STRING,
            "policy_mode": _NULLABLE_STRING,
            "mx": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "findings": _COUNT,
        }
    ),
    "MonitorEvent": _object(
        {
            "id": {"type": "integer"},
            "domain": {"type": "string"},
            "code": {"type": "string"},
            "subject": {"type": "string"},
            "severity": {"type": "string", "enum": ["error", "warning", "info"]},
            "message": {"type": "string"},
            "fix": {"type": "string"},
            "opened_at": _TIME,
            "cleared_at": {**_TIME, "nullable": True},
            "title": {"type": "string"},
        }
    ),
    "Monitor": {
        **_object(
            {
                "last_checked_at": {**_TIME, "nullable": True},
                "open_events": _COUNT,
                "runs": {"type": "array", "items": _ref("MonitorRun")},
                "events": {"type": "array", "items": _ref("MonitorEvent")},
            }
        ),
        "description": "The newest checks (at most 50) and events (at most 100) of mtasts monitor, newest first",
    },
    "ActionPlan": _object(
        {
            "domain": {"type": "string"},
            "action": {"type": "string", "enum": list(_ACTIONS)},
            "stop": {**_NULLABLE_STRING, "description": "why the action is not possible now"},
            "edit": {**_NULLABLE_STRING, "description": "the configuration edit made before the steps"},
            "max_age": {
                "type": "integer",
                "nullable": True,
                "description": "retire: the max_age of the mode none policy planned (null for the other actions)",
            },
            "plan": {"type": "object", "nullable": True, "description": "as 'mtasts publish plan --json'"},
            "fingerprint": {"type": "string", "description": "what the POST confirms"},
        }
    ),
    "ActionOutcome": _object(
        {
            "domain": {"type": "string"},
            "action": {"type": "string", "enum": list(_ACTIONS)},
            "outcome": {
                "type": "string",
                "enum": ["done", "set-record", "waiting", "refused", "failed", "changed", "stopped"],
            },
            "message": {"type": "string"},
            "done": {"type": "array", "items": {"type": "string"}},
            "next": {
                **_object({"action": {"type": "string"}, "not_before": {**_TIME, "nullable": True}}),
                "nullable": True,
            },
            "forced_reason": _NULLABLE_STRING,
        }
    ),
    "Check": {
        **_object(
            {
                "domain": {"type": "string"},
                "status": {"type": "string", "enum": ["ok", "warning", "error"]},
                "findings": {"type": "array", "items": {"type": "object"}},
            },
            closed=False,
        ),
        "description": "The object 'mtasts check --json' prints for the domain",
    },
    "Session": {
        **_object(
            {
                "user": {"type": "string"},
                "role": {"type": "string", "enum": ["admin", "read-only"]},
                "via": {"type": "string", "enum": ["session", "proxy"], "description": "how the user signed in"},
                "csrf_token": {"type": "string", "description": "the X-CSRF-Token header of this user's POSTs"},
            }
        ),
        "description": "Who is signed in",
    },
    "AuditEntry": _object(
        {
            "at": _TIME,
            "actor": {"type": "string"},
            "action": {"type": "string", "description": "login, logout, publish-apply, publish-enforce, ..."},
            "domain": _NULLABLE_STRING,
            "detail": {"type": "string"},
        }
    ),
    "Audit": {
        **_object({"entries": {"type": "array", "items": _ref("AuditEntry")}}),
        "description": "The audit trail, newest first",
    },
    "Pending": _object(
        {
            "id": {"type": "string"},
            "domain": {"type": "string"},
            "state": {"type": "string", "enum": ["waiting", "running"]},
        }
    ),
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


# A domain name in A-labels (the server also takes Unicode names and converts them, RFC 5891):
# labels of letters, digits and inner hyphens, a top-level label of letters.
_DOMAIN_SCHEMA: Final = {
    "type": "string",
    "maxLength": 253,
    "pattern": r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
}
_DOMAIN_PATH: Final = {
    "name": "domain",
    "in": "path",
    "required": True,
    "description": "a domain name",
    "schema": _DOMAIN_SCHEMA,
}
_DAYS: Final = {
    "name": "days",
    "in": "query",
    "required": False,
    "description": f"only the last N days up to today (1 to {MAX_DAYS}); absent or 'all': everything stored",
    "schema": {"type": "string", "pattern": r"^(all|[1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-5][0-9]|3660)$"},
}
_DOMAIN_QUERY: Final = {
    "name": "domain",
    "in": "query",
    "required": False,
    "description": "only this policy domain",
    "schema": _DOMAIN_SCHEMA,
}
_ACTION_PATH: Final = {
    "name": "action",
    "in": "path",
    "required": True,
    "description": "the publish action",
    "schema": {"type": "string", "enum": list(_ACTIONS)},
}
_UNAVAILABLE: Final = _error("the report store cannot be used (unreachable, unreadable)")


def _paths() -> dict[str, Any]:
    return {
        "/api/check": {
            "get": {
                "summary": "Check a domain now, as 'mtasts check --json' does",
                "parameters": [
                    {
                        "name": "domain",
                        "in": "query",
                        "required": True,
                        "schema": _DOMAIN_SCHEMA,
                    }
                ],
                "responses": {
                    "200": _json("Check", "the check's result; Content-Location is its result page"),
                    "400": _error("not a domain name (domain-invalid)"),
                    "429": _error("public mode: too many checks (rate-limited); Retry-After"),
                    "503": _error("every check slot is taken (busy); Retry-After"),
                },
            }
        },
        "/api/result/{job_id}": {
            "get": {
                "summary": "A check's result by its id",
                "parameters": [
                    {
                        "name": "job_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    }
                ],
                "responses": {
                    "200": _json("Check", "the result"),
                    "202": _json("Pending", "the check is still running"),
                    "404": _error("no such result (result-unknown)"),
                },
            }
        },
        "/api/reports": {
            "get": {
                "summary": "What the stored TLS reports say, every domain or one",
                "parameters": [_DAYS, _DOMAIN_QUERY],
                "responses": {
                    "200": _json("Reports", "the dashboard's data"),
                    "400": _error("a bad period (period-invalid) or domain (domain-invalid)"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/api/reports/{domain}": {
            "get": {
                "summary": "What the stored TLS reports say about one domain",
                "parameters": [_DOMAIN_PATH, _DAYS],
                "responses": {
                    "200": _json("Reports", "the domain's dashboard data"),
                    "400": _error("a bad period (period-invalid) or domain (domain-invalid)"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/api/reports.csv": {
            "get": {
                "summary": "One table of the dashboard as CSV",
                "parameters": [
                    {
                        "name": "table",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": list(CSV_TABLES)},
                    },
                    _DAYS,
                    _DOMAIN_QUERY,
                ],
                "responses": {
                    "200": {
                        "description": "a header line, then one line per row",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    "400": _error("an unknown table (table-invalid), a bad period or domain"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/api/domains/{domain}": {
            "get": {
                "summary": "The domain page's data: roll-out state, policy history, report trend",
                "parameters": [_DOMAIN_PATH, _DAYS],
                "responses": {
                    "200": _json("Domain", "the domain's data"),
                    "400": _error("a bad period (period-invalid) or domain (domain-invalid)"),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/api/session": {
            "get": {
                "summary": "Who is signed in, and the CSRF token of their POSTs (an app with accounts)",
                "responses": {
                    "200": _json("Session", "the signed-in user"),
                    "401": _error("not signed in (login-required)"),
                },
            }
        },
        "/api/audit": {
            "get": {
                "summary": "The audit trail: sign-ins, sign-outs and publish actions, newest first (admin role)",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "at most this many entries (1 to 1000; default 100)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
                "responses": {
                    "200": _json("Audit", "the newest entries"),
                    "400": _error("limit is not a number (limit-invalid)"),
                    "401": _error("not signed in (login-required)"),
                    "403": _error("not an admin (forbidden)"),
                },
            }
        },
        "/api/domains/{domain}/actions/{action}": {
            "get": {
                "summary": "The plan of a publish action (apply, enforce, retire) now: steps, guards, refusals",
                "parameters": [
                    _DOMAIN_PATH,
                    _ACTION_PATH,
                    {
                        "name": "max_age",
                        "in": "query",
                        "required": False,
                        "description": "retire: the max_age of the mode none policy, in seconds "
                        "(default: mtasts web serve --retire-max-age)",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": _json("ActionPlan", "the plan, or why the action is not possible here (stop)"),
                    "400": _error("not a domain name (domain-invalid), a bad max_age (max-age-invalid)"),
                    "401": _error("not signed in (login-required)"),
                    "404": _error("no such action (action-unknown)"),
                    "503": _error("the store cannot be reached (store-unavailable)"),
                },
            },
            "post": {
                "summary": "Carry out the plan shown (admin role; the X-CSRF-Token header)",
                "parameters": [_DOMAIN_PATH, _ACTION_PATH],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["fingerprint"],
                                "properties": {
                                    "fingerprint": {"type": "string", "description": "the plan's, from the GET"},
                                    "force": {"type": "boolean", "description": "override refusing guards"},
                                    "reason": {"type": "string", "description": "why (needed with force)"},
                                    "max_age": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "description": "retire: the max_age the GET planned with",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json("ActionOutcome", "the plan was carried out, up to its outcome"),
                    "400": _error(
                        "a bad domain or body (domain-invalid, body-invalid, reason-missing, max-age-invalid)"
                    ),
                    "401": _error("not signed in (login-required)"),
                    "403": _error("not an admin (forbidden), or a missing or wrong CSRF token"),
                    "404": _error("no such action (action-unknown)"),
                    "409": _json("ActionOutcome", "nothing was done: refused, changed since shown, or not possible"),
                    "413": _error("the body is too large (body-too-large)"),
                    "503": _error("the store cannot be reached or used (store-unavailable, publish-unavailable)"),
                },
            },
        },
    }


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """The document; ``server_url``: where the app is mounted (links follow the mount point)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mtasts web",
            "version": __version__,
            "description": "The JSON API behind the mtasts web pages: the inspector, the TLS-report "
            "dashboard and the domain pages. Keys, codes and messages are English.",
        },
        "servers": [{"url": server_url}],
        "paths": _paths(),
        "components": {"schemas": _SCHEMAS},
    }


def openapi_routes() -> list[BaseRoute]:
    async def openapi(request: Request) -> Response:
        root = request.scope.get("root_path") or "/"
        return JSONResponse(openapi_document(root))

    return [Route("/openapi.json", openapi, name="openapi")]
