"""Benchmark: how long `shinha check-config` takes to load a large Nagios-syntax tree.

Generates a configuration tree of N hosts x S services per host that both shinha and Nagios 4
accept, then times `shinha check-config --json shinha.cfg` and (when installed) `nagios4 -v
nagios.cfg` on it, each in its own child process whose peak RSS comes from `os.wait4`.

    python bench/config_load.py                      # 10,000 hosts x 10 services, 3 runs
    python bench/config_load.py --hosts 200 --repeat 1 --out /tmp/tree --keep

The last line of output is one JSON document starting with `{"bench": "config_load"`; it is
also appended to bench/out/config_load.jsonl. Exits 1 if either tool rejects the tree (then the
generator is wrong, or one of the tools is) or if the object counts are not the expected ones.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    REPO_DIR,
    append_result,
    compile_shinha,
    nagios_command,
    rounded,
    scratch_dir,
)

TARGET_SECONDS = 1.3
TARGET_RSS_MIB = 400.0

HOSTGROUPS = 100
HOST_FILES = 100
#: Every PARENT_EVERY-th host is a "router"; the next PARENT_CHILDREN hosts have it as parent.
PARENT_EVERY = 10
PARENT_CHILDREN = 3

#: Check commands: name -> command line. They use $USER1$, $HOSTADDRESS$ and $ARGn$.
CHECK_COMMANDS: dict[str, str] = {
    "check-host-alive": "$USER1$/check_ping -H $HOSTADDRESS$ -w 3000.0,80% -c 5000.0,100% -p 1",
    "check_ping": "$USER1$/check_ping -H $HOSTADDRESS$ -w $ARG1$ -c $ARG2$ -p 5",
    "check_tcp": "$USER1$/check_tcp -H $HOSTADDRESS$ -p $ARG1$ -t $ARG2$",
    "check_http": "$USER1$/check_http -H $HOSTADDRESS$ -u $ARG1$ -t $ARG2$",
    "check_ssh": "$USER1$/check_ssh -p $ARG1$ -t $ARG2$ $HOSTADDRESS$",
    "check_dns": "$USER1$/check_dns -H $ARG1$ -s $HOSTADDRESS$ -t $ARG2$",
    "check_snmp": "$USER1$/check_snmp -H $HOSTADDRESS$ -C $_HOSTSNMP_COMMUNITY$ -o $ARG1$ "
                  "-w $ARG2$",
    "check_nrpe_disk": "$USER1$/check_nrpe -H $HOSTADDRESS$ -c check_disk -a $ARG1$ $ARG2$",
    "check_nrpe_load": "$USER1$/check_nrpe -H $HOSTADDRESS$ -c check_load -a $ARG1$ $ARG2$",
}
NOTIFY_COMMANDS: dict[str, str] = {
    "notify-host-by-email": "/usr/bin/printf \"%b\" \"$HOSTNAME$ is $HOSTSTATE$\\n\" | "
                            "/usr/bin/mail -s \"$HOSTNAME$ $HOSTSTATE$\" $CONTACTEMAIL$",
    "notify-service-by-email": "/usr/bin/printf \"%b\" \"$SERVICEDESC$ on $HOSTNAME$ is "
                               "$SERVICESTATE$\\n\" | /usr/bin/mail -s \"$SERVICEDESC$ "
                               "$SERVICESTATE$\" $CONTACTEMAIL$",
}
#: The explicit services cycle through these: (description prefix, command, arg1, arg2).
SERVICE_KINDS: list[tuple[str, str, str, str]] = [
    ("SSH", "check_ssh", "22", "10"),
    ("HTTP", "check_http", "/health", "10"),
    ("HTTPS port", "check_tcp", "443", "5"),
    ("DNS", "check_dns", "example.org", "5"),
    ("SNMP uptime", "check_snmp", "sysUpTime.0", "1:"),
    ("Disk root", "check_nrpe_disk", "20%", "10%"),
    ("Load", "check_nrpe_load", "5,4,3", "10,8,6"),
    ("MySQL port", "check_tcp", "3306", "5"),
    ("Ping", "check_ping", "100.0,20%", "500.0,60%"),
]
#: The one service attached by hostgroup_name to every hostgroup.
GROUP_SERVICE = "PING"


# -- generation ------------------------------------------------------------------------------


@dataclass(slots=True)
class Tree:
    """A generated tree: where its main files are and what it should contain."""

    root: Path
    shinha_main: Path
    nagios_main: Path
    hosts: int
    services: int
    hostgroups: int
    object_files: int
    seconds: float


def _host_name(i: int) -> str:
    return f"host-{i:05d}"


def _address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def _block(type_: str, props: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in props)
    lines = [f"define {type_} {{"]
    lines.extend(f"    {k:<{width}}  {v}" for k, v in props)
    lines.append("}\n")
    return "\n".join(lines)


def _write(path: Path, chunks: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(chunks), encoding="utf-8")


def _common_files(objects: Path, hostgroups: int) -> int:
    """Write templates, timeperiod, contacts, commands and hostgroups; return files written."""
    _write(objects / "timeperiods.cfg", [_block("timeperiod", [
        ("timeperiod_name", "24x7"), ("alias", "24 Hours A Day, 7 Days A Week"),
        *[(day, "00:00-24:00") for day in ("sunday", "monday", "tuesday", "wednesday",
                                           "thursday", "friday", "saturday")],
    ])])
    commands = {**CHECK_COMMANDS, **NOTIFY_COMMANDS}
    _write(objects / "commands.cfg", [
        _block("command", [("command_name", name), ("command_line", line)])
        for name, line in commands.items()
    ])
    _write(objects / "contacts.cfg", [
        _block("contact", [
            ("contact_name", "nagiosadmin"), ("alias", "Nagios Admin"),
            ("email", "nagios@localhost"),
            ("host_notifications_enabled", "1"), ("service_notifications_enabled", "1"),
            ("host_notification_period", "24x7"), ("service_notification_period", "24x7"),
            ("host_notification_options", "d,u,r,f,s"),
            ("service_notification_options", "w,u,c,r,f,s"),
            ("host_notification_commands", "notify-host-by-email"),
            ("service_notification_commands", "notify-service-by-email"),
        ]),
        _block("contactgroup", [
            ("contactgroup_name", "admins"), ("alias", "Nagios Administrators"),
            ("members", "nagiosadmin"),
        ]),
    ])
    _write(objects / "templates.cfg", [
        _block("host", [
            ("name", "generic-host"), ("check_command", "check-host-alive"),
            ("max_check_attempts", "3"), ("check_interval", "5"), ("retry_interval", "1"),
            ("check_period", "24x7"), ("notifications_enabled", "1"),
            ("notification_interval", "60"), ("notification_period", "24x7"),
            ("notification_options", "d,u,r"), ("contact_groups", "admins"),
            ("event_handler_enabled", "1"), ("flap_detection_enabled", "1"),
            ("process_perf_data", "1"), ("register", "0"),
        ]),
        _block("host", [
            ("name", "linux-server"), ("use", "generic-host"), ("check_interval", "5"),
            ("max_check_attempts", "10"), ("_SNMP_COMMUNITY", "public"), ("register", "0"),
        ]),
        _block("service", [
            ("name", "generic-service"), ("active_checks_enabled", "1"),
            ("passive_checks_enabled", "1"), ("max_check_attempts", "3"),
            ("check_interval", "10"), ("retry_interval", "2"), ("check_period", "24x7"),
            ("notifications_enabled", "1"), ("notification_interval", "60"),
            ("notification_period", "24x7"), ("notification_options", "w,u,c,r"),
            ("contact_groups", "admins"), ("is_volatile", "0"), ("register", "0"),
        ]),
        _block("service", [
            ("name", "local-service"), ("use", "generic-service"), ("check_interval", "5"),
            ("retry_interval", "1"), ("register", "0"),
        ]),
    ])
    _write(objects / "hostgroups.cfg", [
        _block("hostgroup", [("hostgroup_name", f"hg-{g:03d}"), ("alias", f"Hostgroup {g}")])
        for g in range(hostgroups)
    ])
    return 5


def generate(root: Path, hosts: int, per_host: int) -> Tree:
    """Write a tree of `hosts` hosts with `per_host` services each under `root`."""
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    objects = root / "objects"
    if objects.exists():  # a previous, maybe larger, tree: its files would still be read
        shutil.rmtree(objects)
    groups = min(HOSTGROUPS, hosts)
    n_files = min(HOST_FILES, hosts)
    files = _common_files(objects, groups)
    _write(objects / "services" / "hostgroup-services.cfg", [_block("service", [
        ("hostgroup_name", ",".join(f"hg-{g:03d}" for g in range(groups))),
        ("service_description", GROUP_SERVICE), ("use", "generic-service"),
        ("check_command", "check_ping!100.0,20%!500.0,60%"),
    ])])
    files += 1
    for f in range(n_files):  # n_files <= hosts: every file gets at least one host
        host_chunks: list[str] = []
        svc_chunks: list[str] = []
        for i in range(f * hosts // n_files, (f + 1) * hosts // n_files):
            name = _host_name(i)
            props = [
                ("host_name", name), ("alias", f"Host {i} of the benchmark"),
                ("address", _address(i)), ("use", "linux-server"),
                ("hostgroups", f"hg-{i % groups:03d}"),
                ("_SNMP_COMMUNITY", f"community{i % 7}"),
            ]
            offset = i % PARENT_EVERY
            if 0 < offset <= PARENT_CHILDREN:
                props.append(("parents", _host_name(i - offset)))
            host_chunks.append(_block("host", props))
            for k in range(per_host - 1):
                label, command, arg1, arg2 = SERVICE_KINDS[k % len(SERVICE_KINDS)]
                svc_chunks.append(_block("service", [
                    ("host_name", name), ("service_description", f"{label} {k + 1}"),
                    ("use", "local-service" if k % 2 else "generic-service"),
                    ("check_command", f"{command}!{arg1}!{arg2}"),
                ]))
        _write(objects / "hosts" / f"hosts-{f:03d}.cfg", host_chunks)
        files += 1
        if svc_chunks:
            _write(objects / "services" / f"services-{f:03d}.cfg", svc_chunks)
            files += 1
    (root / "resource.cfg").write_text("$USER1$=/usr/lib/nagios/plugins\n", encoding="utf-8")
    shinha_main = root / "shinha.cfg"
    shinha_main.write_text("# generated by bench/config_load.py\n"
                           "cfg_dir=objects\nresource_file=resource.cfg\n", encoding="utf-8")
    nagios_main = root / "nagios.cfg"
    var = root / "nagios-var"
    (var / "checkresults").mkdir(parents=True, exist_ok=True)
    nagios_main.write_text("\n".join([
        "# generated by bench/config_load.py",
        f"cfg_dir={objects}",
        f"resource_file={root / 'resource.cfg'}",
        f"log_file={var / 'nagios.log'}",
        f"check_result_path={var / 'checkresults'}",
        f"lock_file={var / 'nagios.lock'}",
        f"temp_file={var / 'nagios.tmp'}",
        f"temp_path={var}",
        f"status_file={var / 'status.dat'}",
        f"state_retention_file={var / 'retention.dat'}",
        f"object_cache_file={var / 'objects.cache'}",
        f"precached_object_file={var / 'objects.precache'}",
        f"command_file={var / 'nagios.cmd'}",
        f"debug_file={var / 'nagios.debug'}",
        f"nagios_user={pwd.getpwuid(os.geteuid()).pw_name}",
        f"nagios_group={grp.getgrgid(os.getegid()).gr_name}",
        "illegal_object_name_chars=`~!$%^&*|'\"<>?,()=",
        "illegal_macro_output_chars=`~$&|'\"<>",
        "check_external_commands=0",
        "enable_notifications=0",
        "",
    ]), encoding="utf-8")
    return Tree(root=root, shinha_main=shinha_main, nagios_main=nagios_main, hosts=hosts,
                services=hosts * per_host, hostgroups=groups, object_files=files,
                seconds=time.perf_counter() - started)


# -- measuring -------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One child process: its exit code, wall time, peak RSS and output."""

    code: int
    seconds: float
    rss_mib: float
    stdout: str
    stderr: str


@dataclass(slots=True)
class Measure:
    """Every run of one tool."""

    tool: str
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_rss(self) -> float:
        return max(r.rss_mib for r in self.runs)


def run_child(argv: Sequence[str], cwd: Path) -> Run:
    """Run argv to completion; time it and take its own peak RSS from os.wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Run(code=proc.returncode, seconds=elapsed,
                   rss_mib=usage.ru_maxrss / 1024.0,  # Linux: KiB
                   stdout=out.read().decode("utf-8", "replace"),
                   stderr=err.read().decode("utf-8", "replace"))


def shinha_command() -> list[str]:
    """The `shinha` to run: the repo's virtualenv's, the one on PATH, or `python -m shinha`."""
    venv = REPO_DIR / ".venv" / "bin" / "shinha"
    if venv.is_file():
        return [str(venv)]
    found = shutil.which("shinha")
    return [found] if found else [sys.executable, "-m", "shinha"]


def measure(tool: str, argv: Sequence[str], cwd: Path, repeat: int) -> Measure:
    result = Measure(tool)
    for n in range(repeat):
        run = run_child(argv, cwd)
        result.runs.append(run)
        print(f"  {tool:<7} run {n + 1}/{repeat}: {run.seconds:7.3f} s  "
              f"{run.rss_mib:7.1f} MiB  exit {run.code}", flush=True)
    return result


_NAGIOS_TOTAL = re.compile(r"Total (Warnings|Errors):\s+(\d+)")
_NAGIOS_CHECKED = re.compile(r"Checked\s+(\d+)\s+(services|hosts|host groups)\.")


def nagios_summary(text: str) -> dict[str, int]:
    """Counts from `nagios4 -v` output: warnings, errors, services, hosts, host groups."""
    out: dict[str, int] = {}
    for kind, number in _NAGIOS_TOTAL.findall(text):
        out[kind.lower()] = int(number)
    for number, kind in _NAGIOS_CHECKED.findall(text):
        out[kind] = int(number)
    return out


def _diag_line(d: dict[str, Any]) -> str:
    where = d.get("file") or ""
    if where and d.get("line"):
        where = f"{where}:{d['line']}"
    return f"{where}: {d.get('message', d)}" if where else str(d.get("message", d))


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=10_000, help="hosts (default 10000)")
    parser.add_argument("--services-per-host", type=int, default=10,
                        help="services per host (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool (default 3)")
    parser.add_argument("--out", type=Path, help="write the tree here (kept) instead of a "
                        "temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.services_per_host < 1 or args.repeat < 1:
        parser.error("--hosts, --services-per-host and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_dir("shinha-bench-", "tree", args.out, args.keep) as root:
        return bench(args, root)


def bench(args: argparse.Namespace, root: Path) -> int:
    tree = generate(root, args.hosts, args.services_per_host)
    print(f"generated {tree.hosts} hosts x {args.services_per_host} services = "
          f"{tree.services} services, {tree.hostgroups} hostgroups, {tree.object_files} "
          f"object files in {tree.seconds:.2f} s under {root}", flush=True)
    ok = True
    compile_shinha()

    shinha = measure("shinha", [*shinha_command(), "check-config", "--json",
                                str(tree.shinha_main)], root, args.repeat)
    last = shinha.runs[-1]
    try:
        doc: dict[str, Any] = json.loads(last.stdout)
    except ValueError:
        print(f"shinha printed no JSON (exit {last.code}):\n{last.stdout}{last.stderr}")
        return 1
    counts: dict[str, int] = doc.get("counts", {})
    errors: list[dict[str, Any]] = doc.get("errors", [])
    warnings: list[dict[str, Any]] = doc.get("warnings", [])
    if last.code != 0 or not doc.get("valid"):
        ok = False
        print(f"\nshinha says the tree is INVALID (exit {last.code}), {len(errors)} errors:")
        for d in errors[:50]:
            print(f"  error: {_diag_line(d)}")
    if warnings:
        print(f"\nshinha: {len(warnings)} warnings:")
        for d in warnings[:20]:
            print(f"  warning: {_diag_line(d)}")
    if counts.get("host") != tree.hosts or counts.get("service") != tree.services:
        ok = False
        print(f"\nshinha counts {counts.get('host')} hosts and {counts.get('service')} services;"
              f" expected {tree.hosts} and {tree.services}")

    nagios: Measure | None = None
    nagios_bin = nagios_command()
    nagios_counts: dict[str, int] = {}
    if nagios_bin:
        nagios = measure("nagios4", [nagios_bin, "-v", str(tree.nagios_main)], root,
                         args.repeat)
        run = nagios.runs[-1]
        nagios_counts = nagios_summary(run.stdout)
        if run.code != 0 or nagios_counts.get("errors", 1) != 0:
            ok = False
            print(f"\nnagios4 says the tree is INVALID (exit {run.code}):")
            print("\n".join([x for x in run.stdout.splitlines()
                             if "Error" in x or "Warning" in x or "error" in x][:50]))
            print(run.stderr)
        elif nagios_counts.get("warnings"):
            print(f"\nnagios4: {nagios_counts['warnings']} warnings:")
            print("\n".join([x for x in run.stdout.splitlines() if "Warning" in x][:20]))
        if (nagios_counts.get("hosts"), nagios_counts.get("services")) != (tree.hosts,
                                                                             tree.services):
            ok = False
            print(f"\nnagios4 checked {nagios_counts.get('hosts')} hosts and "
                  f"{nagios_counts.get('services')} services; expected {tree.hosts} and "
                  f"{tree.services}")
    else:
        print("nagios4 not found (neither on PATH nor /usr/sbin/nagios4): not compared")

    ratio_time = shinha.best / nagios.best if nagios and nagios.best > 0 else None
    ratio_rss = shinha.peak_rss / nagios.peak_rss if nagios and nagios.peak_rss > 0 else None
    passed = ok and shinha.best <= TARGET_SECONDS and shinha.peak_rss <= TARGET_RSS_MIB
    files = int(doc.get("files", 0))

    print("\nconfig_load summary")
    print(f"  tree       {tree.hosts} hosts, {tree.services} services "
          f"({args.services_per_host}/host, 1 by hostgroup), {files} files read by shinha")
    print(f"  shinha     best {shinha.best:.3f} s  median {shinha.median:.3f} s  "
          f"peak {shinha.peak_rss:.1f} MiB  (own load time {doc.get('seconds')} s; "
          f"{len(errors)} errors, {len(warnings)} warnings)")
    if nagios:
        print(f"  nagios4    best {nagios.best:.3f} s  median {nagios.median:.3f} s  "
              f"peak {nagios.peak_rss:.1f} MiB  ({nagios_counts.get('errors')} errors, "
              f"{nagios_counts.get('warnings')} warnings)")
        print(f"  ratio      shinha/nagios4: time x{ratio_time:.2f}, memory x{ratio_rss:.2f}"
              if ratio_time is not None and ratio_rss is not None else "  ratio      n/a")
    print(f"  target     best <= {TARGET_SECONDS} s and peak <= {TARGET_RSS_MIB:.0f} MiB: "
          f"{'PASS' if passed else 'FAIL'}")

    record: dict[str, Any] = {
        "bench": "config_load",
        "hosts": tree.hosts,
        "services": counts.get("service", tree.services),
        "services_per_host": args.services_per_host,
        "files": files,
        "repeat": args.repeat,
        "shinha_seconds_best": rounded(shinha.best),
        "shinha_seconds_median": rounded(shinha.median),
        "shinha_peak_rss_mib": rounded(shinha.peak_rss, 1),
        "shinha_load_seconds": doc.get("seconds"),
        "shinha_errors": len(errors),
        "shinha_warnings": len(warnings),
        "nagios4_seconds_best": rounded(nagios.best) if nagios else None,
        "nagios4_seconds_median": rounded(nagios.median) if nagios else None,
        "nagios4_peak_rss_mib": rounded(nagios.peak_rss, 1) if nagios else None,
        "ratio_time": rounded(ratio_time, 2),
        "ratio_rss": rounded(ratio_rss, 2),
        "target_seconds": TARGET_SECONDS,
        "target_rss_mib": TARGET_RSS_MIB,
        "valid": ok,
        "pass": passed,
    }
    append_result(record)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
