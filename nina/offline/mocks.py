"""Pulumi mocks that stand in for the OpenStack, TLS, Random and Command providers, faithfully.

Two modes, like `pulumi preview` versus a real provider:
- placeholders (default): every value only a provider computes (ids, keys, certificates, addresses) is a stable
  string naming its source, e.g. `[computed: tls PrivateKey superlink-key privateKeyPem]`, so two runs give the
  same bytes and a reviewer sees where each value flows;
- materialize: pulumi-tls is emulated with real keys and certificates (`nina.offline.tls_emulation`) and passwords are
  real random strings, so tests can feed the material to openssl, flwr and openvpn.

The monitor records each registration with its parent and the stack's outputs, secrets kept as secrets.
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from nina.offline import tls_emulation
from nina.offline.wire import mask, secret, unwrap

__all__ = ["NinaMocks", "RecordingMonitor", "Registration", "mask", "resource_id"]


def resource_id(type_token: str, name: str) -> str:
    """The id the mocks give a resource (how other resources' inputs refer to it, e.g. a rule's remoteGroupId):
    stable, so two previews give the same bytes."""
    package, kind = _short(type_token)
    if package == "tls":
        return f"[computed: tls {kind} {name} id]"
    digest = hashlib.sha256(f"{type_token}/{name}".encode()).hexdigest()[:12]
    return f"{kind.lower()}-{name}-{digest}"


def _short(type_token: str) -> tuple[str, str]:
    """`tls:index/privateKey:PrivateKey` -> ("tls", "PrivateKey")."""
    package, _, rest = type_token.partition(":")
    return package, rest.rpartition(":")[2]


# Outputs each provider computes, by type token (what the real provider returns beyond the inputs).
COMPUTED: dict[str, tuple[str, ...]] = {
    "tls:index/privateKey:PrivateKey": (
        "privateKeyPem",
        "privateKeyPemPkcs8",
        "privateKeyOpenssh",
        "publicKeyPem",
        "publicKeyOpenssh",
        "publicKeyFingerprintMd5",
        "publicKeyFingerprintSha256",
    ),
    "tls:index/selfSignedCert:SelfSignedCert": ("certPem", "validityStartTime", "validityEndTime", "keyAlgorithm", "readyForRenewal"),
    "tls:index/certRequest:CertRequest": ("certRequestPem", "keyAlgorithm"),
    "tls:index/locallySignedCert:LocallySignedCert": ("certPem", "validityStartTime", "validityEndTime", "caKeyAlgorithm", "readyForRenewal"),
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
    "openstack:networking/floatingIp:FloatingIp": ("address",),
    "openstack:database/instance:Instance": ("addresses",),
    "openstack:compute/instance:Instance": ("accessIpV4",),
    "command:remote:Command": ("stdout", "stderr"),
    "openstack:identity/applicationCredential:ApplicationCredential": ("secret", "projectId"),
}
SECRET_OUTPUTS = {
    "tls:index/privateKey:PrivateKey": ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"),
    "random:index/randomPassword:RandomPassword": ("result", "bcryptHash"),
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
    "openstack:identity/applicationCredential:ApplicationCredential": ("secret",),
}


@dataclass
class Registration:
    type: str
    name: str
    parent: str  # parent as "<type>::<name>" ("" for the stack itself)
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    custom: bool = True
    protect: bool = False  # `protect=True`: Pulumi refuses to delete or replace it
    replace_on_changes: tuple[str, ...] = ()  # inputs whose change replaces it (the SDK's, e.g. pulumi-command's triggers)


class NinaMocks(pulumi.runtime.Mocks):
    def __init__(self, materialize: bool = False) -> None:
        self.materialize = materialize
        self._lock = threading.Lock()
        self.outputs_by_name: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        package, kind = _short(args.typ)
        if not args.custom:
            return f"{args.name}", {}
        computed = self._compute(args.typ, args.name, args.inputs)
        outputs = {**args.inputs, **computed}
        with self._lock:
            self.outputs_by_name[args.name] = outputs
        return resource_id(args.typ, args.name), outputs

    def _compute(self, type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        package, kind = _short(type_token)
        if self.materialize:
            real = self._materialize(type_token, inputs)
            if real is not None:
                return real
        out: dict[str, Any] = {}
        for prop in COMPUTED.get(type_token, ()):
            value: Any = f"[computed: {package} {kind} {name} {prop}]"
            if type_token == "openstack:database/instance:Instance":
                value = [value]
            if type_token == "tls:index/selfSignedCert:SelfSignedCert" and prop == "readyForRenewal":
                value = False
            if type_token == "tls:index/locallySignedCert:LocallySignedCert" and prop == "readyForRenewal":
                value = False
            if type_token == "command:remote:Command":
                value = ""
            out[prop] = value
        if type_token == "openstack:compute/instance:Instance":
            networks = inputs.get("networks") or []
            out["accessIpV4"] = f"[computed: openstack Instance {name} accessIpV4]" if networks else ""
        return self._secretise(type_token, out)

    def _materialize(self, type_token: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        if type_token in tls_emulation.TLS_TYPES:
            result = tls_emulation.emulate(type_token, unwrap(inputs))
            return self._secretise(type_token, {k: v for k, v in result.items() if k not in inputs})
        if type_token == "random:index/randomPassword:RandomPassword":
            length = int(unwrap(inputs).get("length", 32))
            alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
            value = "".join(pysecrets.choice(alphabet) for _ in range(length))
            return self._secretise(type_token, {"result": value, "bcryptHash": ""})
        if type_token == "random:index/randomBytes:RandomBytes":
            raw = pysecrets.token_bytes(int(unwrap(inputs).get("length", 32)))
            import base64

            return self._secretise(type_token, {"base64": base64.b64encode(raw).decode(), "hex": raw.hex()})
        return None

    @staticmethod
    def _secretise(type_token: str, out: dict[str, Any]) -> dict[str, Any]:
        for prop in SECRET_OUTPUTS.get(type_token, ()):
            if prop in out:
                out[prop] = secret(out[prop])
        return out

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "openstack:networking/getNetwork:getNetwork":
            name = args.args.get("name", "")
            return {"id": f"network-{name}", "name": name, "external": True}
        if args.token == "openstack:dns/getDnsZone:getDnsZone":
            name = args.args.get("name", "")
            return {"id": f"zone-{name}", "name": name, "email": f"hostmaster@{name.rstrip('.')}", "ttl": 3600}
        if args.token == "openstack:images/getImageV2:getImageV2":
            return {"id": f"image-{args.args.get('name', '')}", "name": args.args.get("name", "")}
        raise NotImplementedError(f"mock has no answer for invoke {args.token}")


class RecordingMonitor(MockMonitor):
    """Keeps every registration with its parent, and the stack's outputs, for previews and tests."""

    def __init__(self, mocks: NinaMocks) -> None:
        super().__init__(mocks)
        self._lock = threading.Lock()
        self.registrations: dict[str, Registration] = {}
        self.order: list[str] = []
        self.urn_names: dict[str, str] = {}  # urn -> "<type>::<name>"
        self.stack_urn = ""
        self.stack_outputs: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        urn = response.urn
        with self._lock:
            self.urn_names[urn] = f"{request.type}::{request.name}"
            if request.type == "pulumi:pulumi:Stack":
                self.stack_urn = urn
                return response
            inputs = rpc.deserialize_properties(request.object)
            parent = "" if request.parent in ("", self.stack_urn) else self.urn_names.get(request.parent, request.parent)
            reg = Registration(
                request.type, request.name, parent, inputs, custom=bool(request.custom), protect=bool(request.protect),
                replace_on_changes=tuple(request.replaceOnChanges),
            )
            reg.outputs = self.resources[urn].state if urn in self.resources else {}
            self.registrations[urn] = reg
            self.order.append(urn)
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn == self.stack_urn:
            with self._lock:
                self.stack_outputs = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)
