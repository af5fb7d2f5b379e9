#!/usr/bin/env python3
"""Derives territories.tsv, the compact table contacts ships, from the
official French geography: Etalab's @etalab/decoupage-administratif 6.0.0
(2026 edition; data under the Licence Ouverte / Open Licence).

Usage: build-territories.py GEO_DIR > territories.tsv
GEO_DIR holds communes.json, departements.json and regions.json."""

import json
import sys
from pathlib import Path

geo = Path(sys.argv[1])
communes = json.loads((geo / "communes.json").read_text())
departements = {d["code"]: d for d in json.loads((geo / "departements.json").read_text())}
regions = {r["code"]: r for r in json.loads((geo / "regions.json").read_text())}

print("# Source: Etalab, @etalab/decoupage-administratif 6.0.0 (2026), Licence Ouverte.")
print("# Derived by build-territories.py: regions (R), départements (D), current communes (C).")
print("# kind, code, name, parent (région or département), postal codes;population")
for code, region in sorted(regions.items()):
    print(f"R\t{code}\t{region['nom']}\t\t")
for code, departement in sorted(departements.items()):
    print(f"D\t{code}\t{departement['nom']}\t{departement['region']}\t")
for commune in sorted(communes, key=lambda c: c["code"]):
    if commune.get("type") != "commune-actuelle":
        continue
    postal = ",".join(sorted(set(commune.get("codesPostaux", []))))
    print(f"C\t{commune['code']}\t{commune['nom']}\t{commune['departement']}"
          f"\t{postal};{commune.get('population', 0)}")
