"""Parse Nagios external command lines: `[timestamp] NAME;arg;arg;…`."""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass

from shinha.errors import RequestError
from shinha.perfdata import parse_output
from shinha.wire import CheckResult, ExternalCommand


@dataclass(frozen=True)
class Spec:
    """A command's shape: whether it names a service, how many fields follow the target."""

    service: bool
    args: int
    target: bool = True


SPECS: dict[str, Spec] = {
    "PROCESS_SERVICE_CHECK_RESULT": Spec(True, 2),
    "PROCESS_HOST_CHECK_RESULT": Spec(False, 2),
    "ACKNOWLEDGE_SVC_PROBLEM": Spec(True, 5),
    "ACKNOWLEDGE_HOST_PROBLEM": Spec(False, 5),
    "REMOVE_SVC_ACKNOWLEDGEMENT": Spec(True, 0),
    "REMOVE_HOST_ACKNOWLEDGEMENT": Spec(False, 0),
    "SCHEDULE_FORCED_SVC_CHECK": Spec(True, 1),
    "SCHEDULE_FORCED_HOST_CHECK": Spec(False, 1),
    "SCHEDULE_SVC_CHECK": Spec(True, 1),
    "SCHEDULE_HOST_CHECK": Spec(False, 1),
    "SCHEDULE_SVC_DOWNTIME": Spec(True, 7),
    "SCHEDULE_HOST_DOWNTIME": Spec(False, 7),
    "DEL_SVC_DOWNTIME": Spec(False, 1, target=False),
    "DEL_HOST_DOWNTIME": Spec(False, 1, target=False),
    "REMOVE_SVC_DOWNTIME": Spec(False, 1, target=False),
    "REMOVE_HOST_DOWNTIME": Spec(False, 1, target=False),
    "ENABLE_SVC_NOTIFICATIONS": Spec(True, 0),
    "DISABLE_SVC_NOTIFICATIONS": Spec(True, 0),
    "ENABLE_HOST_NOTIFICATIONS": Spec(False, 0),
    "DISABLE_HOST_NOTIFICATIONS": Spec(False, 0),
    "SEND_CUSTOM_SVC_NOTIFICATION": Spec(True, 3),
    "SEND_CUSTOM_HOST_NOTIFICATION": Spec(False, 3),
}

_LINE = re.compile(r"^\s*(?:\[(\d+(?:\.\d+)?)\]\s*)?([A-Z_]+)(?:;(.*))?$", re.S)
#: Numeric fields by command: their positions among the args (after host/service).
_NUMERIC = {
    "PROCESS_SERVICE_CHECK_RESULT": (0,), "PROCESS_HOST_CHECK_RESULT": (0,),
    "SCHEDULE_SVC_DOWNTIME": (0, 1, 4), "SCHEDULE_HOST_DOWNTIME": (0, 1, 4),
    "SCHEDULE_FORCED_SVC_CHECK": (0,), "SCHEDULE_FORCED_HOST_CHECK": (0,),
    "SCHEDULE_SVC_CHECK": (0,), "SCHEDULE_HOST_CHECK": (0,),
    "SEND_CUSTOM_SVC_NOTIFICATION": (0,), "SEND_CUSTOM_HOST_NOTIFICATION": (0,),
}


#: Largest number a command field may carry (about the year 5138 as a timestamp).
MAX_NUMBER = 1e11


def _number(text: str, what: str, field: str) -> float:
    """A finite number of sane size, or a 400 naming the field."""
    try:
        value = float(text)
    except ValueError:
        raise RequestError(400, "invalid", f"{what} must be a number, got {text[:40]!r}",
                           field) from None
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise RequestError(400, "invalid", f"{what} must be a finite number below "
                           f"{MAX_NUMBER:.0e}, got {text[:40]!r}", field)
    return value


def parse_command(line: str, field: str, now: float, max_output: int = 8192
                  ) -> CheckResult | ExternalCommand:
    """Parse one line into a passive result or a command; a bad line is a 400 at `field`."""
    m = _LINE.match(line)
    if not m:
        raise RequestError(400, "invalid", f"{field}: not '[time] COMMAND;args': "
                           f"{line[:80]!r}", field)
    stamp, name, rest = m.group(1), m.group(2), m.group(3) or ""
    spec = SPECS.get(name)
    if spec is None:
        raise RequestError(400, "invalid", f"{field}: unknown or unsupported command {name!r} "
                           f"(supported: {', '.join(sorted(SPECS))})", field)
    want = (1 if spec.target else 0) + (1 if spec.service else 0) + spec.args
    parts = rest.split(";", want - 1) if want else []
    if len(parts) != want or (spec.target and not parts[0].strip()):
        raise RequestError(400, "invalid", f"{field}: {name} takes {want} fields separated by "
                           f"';', got {len(parts)}", field)
    host = parts[0].strip() if spec.target else ""
    service = parts[1].strip() if spec.service else ""
    args = parts[(1 if spec.target else 0) + (1 if spec.service else 0):]
    for index in _NUMERIC.get(name, ()):
        position = want - len(args) + index + 1
        _number(args[index], f"{field}: {name} field {position}", field)
    when = _number(stamp, f"{field}: the timestamp", field) if stamp else now
    if name.startswith("PROCESS_"):
        code = int(float(args[0]))
        if not 0 <= code <= 3:
            raise RequestError(400, "invalid", f"{field}: return code must be 0-3, got "
                               f"{code}", field)
        output, long_output, perfdata = parse_output(args[1].replace("\\n", "\n"), max_output)
        return CheckResult(result_id=uuid.uuid4().hex, host=host, service=service,
                           return_code=code, output=output, long_output=long_output,
                           perfdata=perfdata, started=when, finished=when, passive=True)
    return ExternalCommand(command_id=uuid.uuid4().hex, name=name, host=host, service=service,
                           args=args, entry_time=when)
