#!/usr/bin/env python3
"""Builds a local Go vulnerability database for govulncheck -db file://DIR.

Usage: vulndb.py OSV_DIR OUT_DIR

OSV_DIR is the data/osv folder of the golang.org/x/vulndb module, which the Go
module proxy serves like any module; the public database host is not reached
from these machines. OUT_DIR gets the v1 layout govulncheck reads:
index/db.json, index/modules.json, index/vulns.json and ID/<id>.json.
"""
import json
import os
import shutil
import sys


def main(osv_dir, out):
    ids = os.path.join(out, "ID")
    index = os.path.join(out, "index")
    os.makedirs(ids, exist_ok=True)
    os.makedirs(index, exist_ok=True)
    modules = {}
    vulns = []
    newest = "0001-01-01T00:00:00Z"
    for name in sorted(os.listdir(osv_dir)):
        if not name.endswith(".json"):
            continue
        src = os.path.join(osv_dir, name)
        with open(src) as f:
            entry = json.load(f)
        vid = entry["id"]
        modified = entry.get("modified", newest)
        newest = max(newest, modified)
        shutil.copyfile(src, os.path.join(ids, vid + ".json"))
        vulns.append({"id": vid, "modified": modified, "aliases": entry.get("aliases", [])})
        for aff in entry.get("affected", []):
            path = aff.get("package", {}).get("name")
            if not path:
                continue
            fixed = ""
            for r in aff.get("ranges", []):
                for ev in r.get("events", []):
                    if "fixed" in ev:
                        fixed = max(fixed, ev["fixed"])
            item = {"id": vid, "modified": modified}
            if fixed:
                item["fixed"] = fixed
            modules.setdefault(path, []).append(item)
    with open(os.path.join(index, "db.json"), "w") as f:
        json.dump({"modified": newest}, f)
    with open(os.path.join(index, "modules.json"), "w") as f:
        json.dump([{"path": p, "vulns": modules[p]} for p in sorted(modules)], f)
    with open(os.path.join(index, "vulns.json"), "w") as f:
        json.dump(vulns, f)
    print("vulndb: %d entries, %d modules, newest %s" % (len(vulns), len(modules), newest))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
