"""Prints pdfid's keyword counts for each PDF named on the command line as
one JSON object keyed by path: {"header": ..., "keywords": {name: [count,
hexcode_count]}}. Every name is counted (allNames), so /URI is there too."""
import json
import sys

from pdfid import pdfid

out = {}
for path in sys.argv[1:]:
    doc = pdfid.PDFiD(path, allNames=True)
    root = doc.documentElement
    if root.getAttribute("IsPDF") != "True":
        out[path] = None
        continue
    words = {}
    for node in root.getElementsByTagName("Keyword"):
        words[node.getAttribute("Name")] = [
            int(node.getAttribute("Count")),
            int(node.getAttribute("HexcodeCount")),
        ]
    out[path] = {"header": root.getAttribute("Header"), "keywords": words,
                 "error": root.getAttribute("ErrorOccured") == "True"}
json.dump(out, sys.stdout)
