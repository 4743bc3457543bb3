"""Nagios macro expansion: the one function the scheduler uses to build a check's command line.

`$ARGn$` come from `check_command name!arg1!arg2` (a `\\!` is a literal `!`); arguments are
themselves expanded first, so `$USER1$` or `$HOSTADDRESS$` inside an argument work as in
Nagios. Unknown macros are left as written, so a plugin's own `$` text is not mangled; `$$` is a
literal `$`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shinha.config.objects import Contact, Host, Service

_MACRO = re.compile(r"\$([A-Za-z0-9_]*)\$")


def used_macros(text: str) -> list[str]:
    """List the macro names a command line uses (without the dollars)."""
    return [m for m in _MACRO.findall(text) if m]


def split_check_command(check_command: str) -> tuple[str, list[str]]:
    """Split `name!arg1!arg2` into the command name and its arguments."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(check_command):
        ch = check_command[i]
        if ch == "\\" and check_command[i + 1 : i + 2] == "!":
            current.append("!")
            i += 2
            continue
        if ch == "!":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts[0].strip(), parts[1:]


@dataclass(slots=True)
class MacroContext:
    """What macros may refer to: the host, the service, the resources, run-time values."""

    host: Host
    service: Service | None = None
    resources: Mapping[str, str] = field(default_factory=dict)
    #: Run-time macros supplied by the scheduler ($HOSTSTATE$, $SERVICEOUTPUT$, …).
    runtime: Mapping[str, str] = field(default_factory=dict)
    #: The contact of a notification ($CONTACTNAME$, $CONTACTEMAIL$, $_CONTACTFOO$, …).
    contact: Contact | None = None

    def lookup(self, name: str) -> str | None:
        host, service = self.host, self.service
        if name in self.runtime:
            return self.runtime[name]
        if name.startswith("USER") or name in self.resources:
            return self.resources.get(name)
        if name.startswith("_HOST"):
            return host.customs.get(name[5:])
        if name.startswith("_SERVICE"):
            return service.customs.get(name[8:]) if service else None
        if name.startswith("CONTACT") or name.startswith("_CONTACT"):
            return self._contact(name)
        simple = {
            "HOSTNAME": host.host_name,
            "HOSTALIAS": host.alias or host.host_name,
            "HOSTADDRESS": host.address or host.host_name,
            "HOSTDISPLAYNAME": host.display_name or host.host_name,
            "HOSTREALM": host.realm,
            "HOSTNOTES": host.notes,
            "HOSTGROUPNAME": host.hostgroups[0] if host.hostgroups else "",
            "HOSTGROUPNAMES": ",".join(host.hostgroups),
            "MAXHOSTATTEMPTS": str(host.max_check_attempts),
        }
        if service is not None:
            simple.update({
                "SERVICEDESC": service.service_description,
                "SERVICEDISPLAYNAME": service.display_name or service.service_description,
                "SERVICENOTES": service.notes,
                "SERVICEGROUPNAMES": ",".join(service.servicegroups),
                "MAXSERVICEATTEMPTS": str(service.max_check_attempts),
            })
        return simple.get(name)

    def _contact(self, name: str) -> str | None:
        contact = self.contact
        if contact is None:
            return None
        if name.startswith("_CONTACT"):
            return contact.customs.get(name[8:])
        return {"CONTACTNAME": contact.contact_name,
                "CONTACTALIAS": contact.alias or contact.contact_name,
                "CONTACTEMAIL": contact.email, "CONTACTPAGER": contact.pager,
                "CONTACTGROUPNAME": contact.contactgroups[0] if contact.contactgroups else "",
                "CONTACTGROUPNAMES": ",".join(contact.contactgroups)}.get(name)


def expand(text: str, ctx: MacroContext, args: list[str] | None = None) -> str:
    """Replace the macros of `text`; `$ARGn$` take `args`."""
    if "$" not in text:
        return text

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if not name:
            return "$"
        if name.startswith("ARG") and name[3:].isdigit():
            index = int(name[3:]) - 1
            return args[index] if args is not None and 0 <= index < len(args) else ""
        value = ctx.lookup(name)
        return m.group(0) if value is None else value

    return _MACRO.sub(replace, text)


def command_line(check_command: str, command_line_template: str, ctx: MacroContext) -> str:
    """Build the command line of a check: arguments first expanded, then the command's line."""
    _, raw_args = split_check_command(check_command)
    args = [expand(a, ctx) for a in raw_args]
    return expand(command_line_template, ctx, args)
