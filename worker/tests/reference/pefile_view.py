"""Prints, as JSON, what the reference library pefile reads from each PE
file named on the command line: the fields the `pe` module reports."""
import hashlib
import json
import sys

import pefile

out = {}
for path in sys.argv[1:]:
    try:
        pe = pefile.PE(path)
    except pefile.PEFormatError as e:
        out[path] = {"error": str(e)}
        continue
    imports = {}
    resolved = []
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        names = []
        for imp in entry.imports:
            # pefile names some imports by ordinal from its own tables
            # (ws2_32, wsock32, oleaut32); the table itself holds the ordinal.
            if imp.import_by_ordinal:
                names.append("ord%d" % imp.ordinal)
                by_ordinal_from_known = entry.dll.lower() in (b"ws2_32.dll", b"wsock32.dll", b"oleaut32.dll")
                resolved.append(by_ordinal_from_known)
            else:
                names.append(imp.name.decode())
        imports.setdefault(entry.dll.decode(), []).extend(names)
    exports = []
    if hasattr(pe, "DIRECTORY_ENTRY_EXPORT"):
        exports = [e.name.decode() for e in pe.DIRECTORY_ENTRY_EXPORT.symbols if e.name]
    resources = []

    def label(entry):
        return str(entry.name) if entry.name is not None else entry.id

    for t in getattr(getattr(pe, "DIRECTORY_ENTRY_RESOURCE", None), "entries", []):
        for n in getattr(getattr(t, "directory", None), "entries", []):
            for lang in getattr(getattr(n, "directory", None), "entries", []):
                d = lang.data.struct
                data = pe.get_data(d.OffsetToData, d.Size)
                resources.append([label(t), label(n), lang.id, d.Size,
                                  hashlib.md5(data).hexdigest()])
    out[path] = {
        "resources": resources,
        "rich_header_md5": pe.get_rich_header_hash() or None,
        "machine": hex(pe.FILE_HEADER.Machine),
        "timestamp": pe.FILE_HEADER.TimeDateStamp,
        "is_dll": pe.is_dll(),
        "entry_point": hex(pe.OPTIONAL_HEADER.AddressOfEntryPoint),
        "sections": [
            {
                "name": s.Name.rstrip(b"\0").decode("latin-1"),
                "virtual_address": hex(s.VirtualAddress),
                "raw_size": s.SizeOfRawData,
                "entropy": round(s.get_entropy(), 3),
                "md5": s.get_hash_md5(),
            }
            for s in pe.sections
        ],
        "imports": imports,
        # Comparable only where pefile named no ordinal from its tables.
        "imphash": (pe.get_imphash() or None) if not any(resolved) else "named-ordinals",
        "exports": exports,
        "overlay_offset": pe.get_overlay_data_start_offset(),
    }
json.dump(out, sys.stdout)
