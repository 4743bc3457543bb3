"""Ask the real engines what they make of each tree of the corpus: verdict, counts, messages.

This is how the `peer` block of every `expected.json` was obtained; it is not part of the test
suite (the engines are not installed by the project). Run it by hand after setting up the
engines as tests/compat/README.md says:

    python tests/compat/peers.py tests/compat/shinken-*          # compare with expected.json
    python tests/compat/peers.py --show tests/compat/foo         # print what the engine says

Each tree is copied to a temporary directory and checked there with the engine's own verify
mode: `shinken-arbiter -v -c MAIN` (Shinken 2.4.3), `alignak_arbiter.py -V -a MAIN`
(Alignak 1.0.0), `alignak-arbiter -V -e INI` with `cfg=MAIN` (Alignak 2.1.5), `nagios4 -v MAIN`.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PY27 = os.environ.get("PEER_PY27", "/root/.pyenv/versions/2.7.18/bin/python")
SHINKEN = Path(os.environ.get("PEER_SHINKEN", "/tmp/shinken-dl/Shinken-2.4.3"))
SHINKEN_DEPS = os.environ.get("PEER_SHINKEN_DEPS", "/tmp/shinken-deps")
ALIGNAK1 = Path(os.environ.get("PEER_ALIGNAK1", "/tmp/alignak1-dl/alignak-1.0.0"))
ALIGNAK1_DEPS = os.environ.get("PEER_ALIGNAK1_DEPS", "/tmp/alignak1-deps")
ALIGNAK2 = os.environ.get("PEER_ALIGNAK2", "/tmp/alignak36/bin/alignak-arbiter")
NAGIOS4 = os.environ.get("PEER_NAGIOS4", "/usr/sbin/nagios4")

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Lines every run prints whatever the tree: the files read, the main-file parameters the
# engine does not use, the daemons it adds when a role has none.
NOISE = re.compile(
    r"Processing object config file|is useless and can be removed|not currently managed"
    r"|Unmanaged configuration statement|unmanaged configuration statements|^\w+: - \w+"
    r"|I add one|I am adding one|Some missing daemons|There is no arbiter"
    r"|Nothing specified for illegal_macro_output_chars|CryptographyDeprecationWarning"
    r"|from cryptography import")


# Runs the engine's own arbiter script unchanged, and when its Config.is_correct() has run
# (after every explode, inheritance and link step), writes the hosts and services it holds to
# PEER_DUMP: the names behind the counts. Works on Python 2.7 and 3.
OBSERVER = """
import json, os, runpy, sys
engine = sys.argv.pop(1)
script = sys.argv[1]
sys.argv = sys.argv[1:]
Config = __import__(engine + '.objects.config', fromlist=['Config']).Config
checked = Config.is_correct

def is_correct(self):
    result = checked(self)
    def name(o):
        return o.get_name() if hasattr(o, 'get_name') else str(o)
    dump = {
        'hosts': sorted(h.host_name for h in self.hosts),
        'services': sorted([s.host_name, s.service_description] for s in self.services),
        'hostgroups': sorted(name(g) for g in self.hostgroups),
        'contactgroups': sorted(name(g) for g in self.contactgroups),
        'servicegroups': sorted(name(g) for g in self.servicegroups),
        'commands': sorted(name(c) for c in self.commands),
        'realms': sorted(name(r) for r in self.realms),
        'modules': sorted(name(m) for m in getattr(self, 'modules', [])),
    }
    with open(os.environ['PEER_DUMP'], 'w') as out:
        json.dump(dump, out)
    return result

Config.is_correct = is_correct
runpy.run_path(script, run_name='__main__')
"""


@dataclass
class Verdict:
    """What one engine said about one tree."""

    engine: str
    verdict: str
    counts: dict[str, int]
    messages: list[str] = field(default_factory=list)
    objects: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"engine": self.engine, "verdict": self.verdict, "counts": self.counts,
                "messages": self.messages, "objects": self.objects}


def _observed(tree: Path) -> dict[str, object]:
    dump = tree / ".peer-dump.json"
    if not dump.is_file():
        return {}
    loaded: dict[str, object] = json.loads(dump.read_text(encoding="utf-8"))
    return loaded


def _observer(tree: Path, engine: str, python: str, script: Path) -> list[str]:
    path = tree / ".peer-observer.py"
    path.write_text(OBSERVER, encoding="utf-8")
    return [python, str(path), engine, str(script)]


def _messages(text: str, pattern: str) -> list[str]:
    """The warnings and errors of a run, without timestamps, logger names and noise."""
    out: list[str] = []
    for raw in text.splitlines():
        line = ANSI.sub("", raw).strip()
        match = re.search(pattern, line)
        if not match:
            continue
        message = re.sub(r"^(\w+: )\[(?:Shinken|alignak[\w.]*)\] ", r"\1", line[match.start():])
        if not NOISE.search(message) and message not in out:
            out.append(message)
    return out


def shinken_24(tree: Path, main: str) -> Verdict:
    modules = tree / ".peer-modules"
    modules.mkdir()
    extra = tree / ".peer-extra.cfg"
    extra.write_text(f"modules_dir={modules}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{SHINKEN}:{SHINKEN_DEPS}",
           "PEER_DUMP": str(tree / ".peer-dump.json")}
    command = _observer(tree, "shinken", PY27, SHINKEN / "bin" / "shinken-arbiter")
    done = subprocess.run([*command, "-v", "-c", main, "-c", str(extra)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    text = done.stdout + done.stderr
    counts = {k: int(n) for n, k in re.findall(r"\tChecked (\d+) (\w+)", ANSI.sub("", text))}
    ok = done.returncode == 0 and "Things look okay" in text
    return Verdict("shinken 2.4.3", "ok" if ok else "refused", counts,
                   _messages(text, r"(WARNING|ERROR|CRITICAL): "), _observed(tree))


def alignak_10(tree: Path, main: str) -> Verdict:
    env = {**os.environ, "PYTHONPATH": f"{ALIGNAK1}:{ALIGNAK1_DEPS}", "PYTHONWARNINGS": "ignore",
           "PEER_DUMP": str(tree / ".peer-dump.json")}
    command = _observer(tree, "alignak", PY27, ALIGNAK1 / "alignak" / "bin" / "alignak_arbiter.py")
    done = subprocess.run([*command, "-V", "-a", main], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    text = done.stdout + done.stderr
    counts = {k: int(n) for n, k in re.findall(r"\tChecked (\d+) (\w+)", ANSI.sub("", text))}
    ok = done.returncode == 0 and "Things look okay" in text
    return Verdict("alignak 1.0.0", "ok" if ok else "refused", counts,
                   _messages(text, r"(WARNING|ERROR|CRITICAL): "), _observed(tree))


ALIGNAK2_INI = """[DEFAULT]
_dist={root}
_dist_BIN=%(_dist)s/bin
_dist_ETC=%(_dist)s/etc
_dist_VAR=%(_dist)s/var
_dist_RUN=%(_dist)s/run
_dist_LOG=%(_dist)s/log
workdir=%(_dist_RUN)s
logdir=%(_dist_LOG)s
etcdir=%(_dist_ETC)s
bindir=%(_dist_BIN)s
config_name=peer check
alignak_name=peer

[alignak-configuration]
cfg={main}

[daemon.arbiter-master]
type=arbiter
name=arbiter-master
port=7770
"""


def alignak_21(tree: Path, main: str, own_ini: str | None = None) -> Verdict:
    if own_ini:  # the tree's own alignak.ini, and the main file as a legacy `-a` file
        ini, legacy = tree / own_ini, ["-a", main]
    else:
        ini, legacy = tree / ".peer-alignak.ini", []
        ini.write_text(ALIGNAK2_INI.format(root=tree / ".peer", main=tree / main),
                       encoding="utf-8")
    env = {**os.environ, "PEER_DUMP": str(tree / ".peer-dump.json")}
    command = _observer(tree, "alignak", str(Path(ALIGNAK2).parent / "python"), Path(ALIGNAK2))
    done = subprocess.run([*command, "-V", "-e", str(ini), *legacy], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    text = ANSI.sub("", done.stdout + done.stderr)
    counts: dict[str, int] = {}
    part = text.split("Checking monitoring configuration...", 1)[-1]
    for kind, body in re.findall(r"- checking (\w+)\.\.\.\n(.*?)(?=- checking |\] Checked\n)",
                                 part, re.S):
        checked = re.search(r"\]\s+checked (\d+)\n", body)
        counts[kind] = int(checked.group(1)) if checked else 0
    ok = done.returncode == 0 and "Things look okay" in text
    return Verdict("alignak 2.1.5", "ok" if ok else "refused", counts,
                   _messages(text, r"(WARNING|ERROR|CRITICAL): "), _observed(tree))


NAGIOS_KINDS = {"host groups": "hostgroups", "service groups": "servicegroups",
                "contact groups": "contactgroups", "time periods": "timeperiods"}


def nagios_4(tree: Path, main: str) -> Verdict:
    # The same main file plus what makes `-p` write the resolved objects where we can read
    # them (as root, Nagios drops to nagios_user: make that the current user).
    observed = tree / Path(main).parent / ".peer-nagios.cfg"
    cache = tree / ".peer-objects.precache"
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    observed.write_text((tree / main).read_text(encoding="utf-8")
                        + f"\nprecached_object_file={cache}\nnagios_user={user}\n"
                        f"nagios_group={group}\n", encoding="utf-8")
    done = subprocess.run([NAGIOS4, "-v", "-p", str(observed)], cwd=tree, capture_output=True,
                          text=True, timeout=300, check=False)
    text = done.stdout + done.stderr
    objects = text.split("Checking objects...", 1)[-1].split("Checking for circular", 1)[0]
    counts = {NAGIOS_KINDS.get(k, k): int(n)
              for n, k in re.findall(r"Checked (\d+) ([a-z ]+)\.", objects)}
    ok = done.returncode == 0 and re.search(r"Total Errors:\s+0\b", text) is not None
    found: dict[str, object] = {}
    if ok and cache.is_file():
        blocks = re.findall(r"define (\w+) \{\n(.*?)\n\s*\}", cache.read_text(encoding="utf-8"),
                            re.S)
        props = [(kind, dict(line.strip().split("\t", 1) for line in body.splitlines()
                             if "\t" in line.strip())) for kind, body in blocks]
        found = {
            "hosts": sorted(p["host_name"] for k, p in props if k == "host"),
            "services": sorted([p["host_name"], p["service_description"]]
                               for k, p in props if k == "service"),
            "hostgroups": sorted(p["hostgroup_name"] for k, p in props if k == "hostgroup"),
        }
    return Verdict("nagios 4.4.6", "ok" if ok else "refused", counts,
                   _messages(text.replace(str(tree) + "/", ""), r"^(Warning|Error): "), found)


# The counts recorded even when zero; other kinds only when the tree has some.
KINDS = {"hosts", "services", "hostgroups", "servicegroups", "contacts", "contactgroups",
         "timeperiods", "commands", "realms", "arbiters", "schedulers", "pollers",
         "reactionners", "brokers", "receivers"}

ENGINES = {"shinken 2.4.3": shinken_24, "alignak 1.0.0": alignak_10,
           "alignak 2.1.5": alignak_21, "nagios 4.4.6": nagios_4}


def ask(tree: Path) -> tuple[dict[str, object], Verdict]:
    """Run the tree's engine (expected.json's peer.engine) on a copy of the tree."""
    expected = json.loads((tree / "expected.json").read_text(encoding="utf-8"))
    engine = expected["peer"]["engine"]
    with tempfile.TemporaryDirectory(prefix="compat-peer-") as tmp:
        # nagios4, run as root, reads the objects as its nagios_user: let it in.
        os.chmod(tmp, 0o755)
        copy = Path(tmp) / tree.name
        shutil.copytree(tree, copy)
        if expected["peer"].get("ini"):
            return expected, alignak_21(copy, expected["main"], expected["peer"]["ini"])
        return expected, ENGINES[engine](copy, expected["main"])


ROLES = ("arbiter", "scheduler", "poller", "receiver")
# Modules an engine adds by itself (Alignak 2.1.5's inner-retention, inner-metrics).
INNER_MODULES = re.compile(r"^inner-")


def shinha_counts(tree: Path, got: Verdict) -> dict[str, int]:
    """The counts shinha must give, from what the engine counted: every object type both
    count the same way; a daemon role only where the tree defines that role (an engine adds
    a default daemon for a role with none, shinha does not); commands not at all (the
    engines count their built-in commands, shinha's count is its own business)."""
    counts = {kind: got.counts[f"{kind}s"]
              for kind in ("host", "service", "hostgroup", "servicegroup", "contact",
                           "contactgroup", "timeperiod")
              if f"{kind}s" in got.counts}
    realms = got.objects.get("realms")
    if isinstance(realms, list):
        counts["realm"] = len(realms)
    modules = got.objects.get("modules")
    if isinstance(modules, list):
        counts["module"] = len([m for m in modules if not INNER_MODULES.match(m)])
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(tree.rglob("*.cfg")))
    for role in ROLES:
        if re.search(rf"^\s*define\s+{role}\s*\{{", text, re.M) and f"{role}s" in got.counts:
            counts[role] = got.counts[f"{role}s"]
    return counts


def record(tree: Path, expected: dict[str, object], got: Verdict) -> dict[str, object]:
    """expected.json with the engine's answer: its verdict (shinha's too), and when the tree
    loads, the counts, the services per host and the group names that shinha must match."""
    out: dict[str, object] = {k: expected[k] for k in ("about", "dialect", "main")
                              if k in expected}
    out["verdict"] = got.verdict
    if got.verdict == "ok":
        out["counts"] = shinha_counts(tree, got)
        services = got.objects.get("services")
        if isinstance(services, list):
            per_host: dict[str, list[str]] = {}
            for host, description in services:
                per_host.setdefault(host, []).append(description)
            out["services"] = per_host
        groups = {kind: got.objects[f"{kind}s"]
                  for kind in ("hostgroup", "servicegroup", "contactgroup")
                  if f"{kind}s" in got.objects}
        if groups:
            out["groups"] = groups
    out.update({k: v for k, v in expected.items() if k not in out and k not in
                ("verdict", "counts", "services", "groups", "peer")})
    counts = {k: v for k, v in got.counts.items() if k in KINDS or v}
    peer = expected.get("peer")
    extra = {k: v for k, v in peer.items() if k == "ini"} if isinstance(peer, dict) else {}
    out["peer"] = {**extra, "engine": got.engine, "verdict": got.verdict, "counts": counts,
                   "messages": got.messages}
    return out


def dump(value: object, indent: str = "") -> str:
    """JSON as a person reads it: a short list of names on one line, anything else nested."""
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list):
        flat = json.dumps(value, ensure_ascii=False)
        if len(flat) + len(inner) <= 96 or not value:
            return flat
        return "[\n" + ",\n".join(inner + dump(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--show", action="store_true", help="print what the engine says")
    parser.add_argument("--write", action="store_true",
                        help="record what the engine says as expected.json's peer block")
    args = parser.parse_args(argv)
    differ = 0
    for tree in args.trees:
        expected, got = ask(tree)
        peer = expected["peer"]
        if args.show:
            print(json.dumps({tree.name: got.as_dict()}, indent=2))
            continue
        if args.write:
            (tree / "expected.json").write_text(dump(record(tree, expected, got)) + "\n",
                                                encoding="utf-8")
            print(f"written    {tree.name}: {got.engine} {got.verdict}")
            continue
        assert isinstance(peer, dict)
        same = (peer["verdict"] == got.verdict
                and all(got.counts.get(k) == v for k, v in peer["counts"].items()))
        differ += not same
        print(f"{'same' if same else 'DIFFERENT':9}  {tree.name}: {got.engine} {got.verdict} "
              f"{ {k: got.counts.get(k) for k in peer['counts']} }")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
