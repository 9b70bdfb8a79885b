"""Keycloak's realm `nina` as the stack describes it (manual §4.1.2.10, §3.4): settings, mail relay, roles, groups,
OIDC clients and people. nina-realm (nina/onhost/nina_realm.py) applies it in place through Keycloak's admin REST
API on every `pulumi up` that changes it, and hourly against drift (README "People and federations").

No secret here: client secrets, the admin's password and the SMTP password are read on the Keycloak host from the
delivered files they already live in; this document is shown in `nina preview` and in reviewers' diffs.
"""

from __future__ import annotations

import json
from typing import Any

from nina.catalog.roles import OIDC_CLIENTS, WEB_ROLES
from nina.config import Person, StackConfig
from nina.plan import public

REALM = "nina"
ADMINS, RESEARCHERS = "nina-admins", "nina-researchers"
FEDERATION_GROUP_PREFIX = "federation-"
# Realm roles (manual §4.1.2.10): JupyterHub's and the SuperLinks' users.
ROLES = ("jupyter_admin", "jupyter_user", "superlink_user")
GROUP_ROLES = {ADMINS: ("jupyter_admin", "jupyter_user", "superlink_user"), RESEARCHERS: ("jupyter_user", "superlink_user")}
SETTINGS = {
    "displayName": "NINA federated learning",
    "enabled": True,
    "sslRequired": "all",
    "registrationAllowed": False,
    "resetPasswordAllowed": True,
    "bruteForceProtected": True,
    "passwordPolicy": "length(12) and notUsername",
    "loginWithEmailAllowed": True,
    "duplicateEmailsAllowed": False,
}
# What a new person's invitation asks for (Keycloak's required actions): a password of their own, a verified address.
INVITATION_ACTIONS = ("UPDATE_PASSWORD", "VERIFY_EMAIL")
INVITATION_LIFESPAN = 7 * 24 * 3600  # seconds the emailed link stays valid


def federation_group(federation: str) -> str:
    return f"{FEDERATION_GROUP_PREFIX}{federation}"


def groups_of(person: Person) -> list[str]:
    """The realm groups a person belongs to: admins (who reach every federation through that group alone) or
    researchers and the group of each federation they are a member of."""
    return [ADMINS if person.admin else RESEARCHERS] + [federation_group(f) for f in person.federations]


def members(cfg: StackConfig) -> dict[str, list[str]]:
    """Each group of the realm and its people (stack output keycloak_groups: who reaches which federation)."""
    groups: dict[str, list[str]] = {name: [] for name in GROUP_ROLES}
    groups.update({federation_group(f): [] for f in cfg.federations})
    for person in cfg.people.values():
        for group in groups_of(person):
            groups[group].append(person.username)
    return {name: sorted(people) for name, people in groups.items()}


def _split(name: str) -> tuple[str, str]:
    first, _, last = name.partition(" ")
    return first, last


def _smtp(cfg: StackConfig) -> dict[str, str] | None:
    if not cfg.smtp.configured:
        return None
    smtp = cfg.smtp
    server = {
        "host": smtp.host, "port": str(smtp.port), "from": cfg.mail_sender, "fromDisplayName": "NINA",
        "starttls": str(smtp.port == 587).lower(), "ssl": str(smtp.port == 465).lower(), "auth": str(smtp.username is not None).lower(),
    }
    if smtp.username:
        server["user"] = smtp.username
    return server


def desired(cfg: StackConfig) -> dict[str, Any]:
    """The whole realm as nina-realm applies it; deterministic (people and federations in the stack's order)."""
    clients = []
    for role in WEB_ROLES:
        client = role.oidc_client
        if client is None:
            continue
        url = "https://" + public.public_name(cfg, role)
        attributes = {"post.logout.redirect.uris": url + "/*"}
        if client.pkce:
            attributes["pkce.code.challenge.method"] = "S256"
        clients.append(
            {
                "clientId": client.client_id,
                "secretEnv": client.env_var,  # in the Keycloak host's secrets file
                "rootUrl": url,
                "redirectUris": [url + client.callback],
                "webOrigins": [url],
                "publicClient": False,
                "standardFlowEnabled": True,
                "directAccessGrantsEnabled": False,
                "attributes": attributes,
                "protocolMappers": [
                    {
                        "name": "groups",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-group-membership-mapper",
                        "config": {
                            "claim.name": "groups", "full.path": "false", "id.token.claim": "true", "access.token.claim": "true",
                            "userinfo.token.claim": "true",
                        },
                    }
                ],
            }
        )
    assert [c["clientId"] for c in clients] == [c.client_id for c in OIDC_CLIENTS]
    groups = [{"name": name, "realmRoles": list(roles)} for name, roles in GROUP_ROLES.items()]
    groups += [{"name": federation_group(f), "realmRoles": ["superlink_user"]} for f in cfg.federations]
    users = [
        {
            "username": p.username,
            "firstName": _split(p.name)[0],
            "lastName": _split(p.name)[1],
            "email": p.email,
            "groups": groups_of(p),
        }
        for p in cfg.people.values()
    ]
    return {
        "realm": REALM,
        "settings": dict(SETTINGS),
        "smtp": _smtp(cfg),
        "roles": list(ROLES),
        "groups": groups,
        "clients": clients,
        "users": users,
        "invitation": {"actions": list(INVITATION_ACTIONS), "lifespan": INVITATION_LIFESPAN},
    }


def desired_json(cfg: StackConfig) -> str:
    return json.dumps(desired(cfg), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
