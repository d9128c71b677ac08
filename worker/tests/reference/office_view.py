"""For each file named: olefile's summary metadata (strings only, for
compound files) and the VBA modules olevba extracts, as one JSON object
keyed by path."""
import json
import sys

import olefile
from oletools.olevba import VBA_Parser

FIELDS = ["title", "subject", "author", "keywords", "comments", "template",
          "last_saved_by", "revision_number", "creating_application",
          "category", "manager", "company"]

out = {}
for path in sys.argv[1:]:
    entry = {"metadata": None, "macros": []}
    if olefile.isOleFile(path):
        ole = olefile.OleFileIO(path)
        meta = ole.get_metadata()
        entry["metadata"] = {
            f: getattr(meta, f).decode("latin-1").split("\x00")[0]
            for f in FIELDS
            if isinstance(getattr(meta, f, None), bytes)
        }
        ole.close()
    parser = VBA_Parser(path)
    if parser.detect_vba_macros():
        for _, stream, name, code in parser.extract_macros():
            if "VBA/" in stream:
                entry["macros"].append({"stream": stream, "code": code})
    parser.close()
    out[path] = entry
json.dump(out, sys.stdout)
