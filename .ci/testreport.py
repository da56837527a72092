#!/usr/bin/env python3
"""Reads `go test -json` on standard input and reports as go test would.

Prints each package's result line as it arrives, the output of every failed
test, the list of skipped tests, and a closing line
"tests: N passed, N failed, N skipped". Exits 1 when a test or a package
failed, and also when any test skipped while CI is set: in CI every tool a
test needs is installed, so a skip means a test did not run.

A copy of the raw stream is kept in the file named by GOTEST_JSON (if set).
"""
import json
import os
import sys


def main():
    keep = None
    if os.environ.get("GOTEST_JSON"):
        keep = open(os.environ["GOTEST_JSON"], "w")
    passed, failed, skipped = [], [], []
    failed_pkgs = []
    output = {}  # (pkg, test) -> [lines]
    build_out = {}  # import path -> [lines]
    for raw in sys.stdin:
        if keep:
            keep.write(raw)
        try:
            ev = json.loads(raw)
        except ValueError:
            # Not JSON: a build error or the go command's own message.
            sys.stdout.write(raw)
            continue
        action = ev.get("Action")
        pkg = ev.get("Package", "")
        test = ev.get("Test")
        if action == "build-output":
            build_out.setdefault(ev.get("ImportPath", ""), []).append(ev.get("Output", ""))
            continue
        if action == "build-fail":
            path = ev.get("ImportPath", "")
            sys.stdout.write("".join(build_out.get(path, [])))
            continue
        if action == "output":
            output.setdefault((pkg, test), []).append(ev.get("Output", ""))
            continue
        if test is None:
            if action in ("pass", "fail", "skip"):
                lines = output.pop((pkg, None), [])
                if action == "fail":
                    failed_pkgs.append(pkg)
                    # Tests that never ended (a timeout's panic, a crash) left their output behind.
                    for key in [k for k in output if k[0] == pkg]:
                        sys.stdout.write("".join(output.pop(key)))
                    sys.stdout.write("".join(lines))
                else:
                    # The package's summary line: "ok  pkg 1.2s" or "?  pkg [no test files]".
                    for line in lines:
                        if line.startswith(("ok", "?")):
                            sys.stdout.write(line)
                sys.stdout.flush()
            continue
        if action == "pass":
            passed.append((pkg, test))
            output.pop((pkg, test), None)
        elif action == "fail":
            failed.append((pkg, test))
            sys.stdout.write("".join(output.pop((pkg, test), [])))
        elif action == "skip":
            skipped.append((pkg, test, "".join(output.pop((pkg, test), [])).strip()))
    if keep:
        keep.close()

    if skipped:
        print("\nskipped tests:")
        for pkg, test, why in skipped:
            reason = why.splitlines()[-1].strip() if why else ""
            print("  %s %s  %s" % (pkg, test, reason))
    if failed:
        print("\nfailed tests:")
        for pkg, test in failed:
            print("  %s %s" % (pkg, test))
    if failed_pkgs:
        print("\nfailed packages:")
        for pkg in failed_pkgs:
            print("  %s" % pkg)
    print("tests: %d passed, %d failed, %d skipped" % (len(passed), len(failed), len(skipped)))
    bad = bool(failed or failed_pkgs)
    if skipped and os.environ.get("CI"):
        print("CI is set and %d tests skipped: every test must run in CI" % len(skipped))
        bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
