"""Build dist/emfix.pyz reproducibly: the same sources give the same bytes, so its SHA-256 can be shipped.

What zipapp does, with sorted entries, a fixed timestamp (SOURCE_DATE_EPOCH, default 1980-01-01) and
fixed permissions; the SHA-256 is printed and written beside the file. Standard library only.

Beside each module its bytecode for the Python that builds it (`name.pyc`, hash-checked against the source
beside it, so no timestamp is in it): zipimport never writes bytecode, so without it every command compiled
each module it imports (~0.1 s of each start). Another Python finds the bytecode's magic number not its own
and compiles the source, as before.
"""

import hashlib
import importlib.util
import marshal
import os
import stat
import sys
import time
import zipfile

MAIN = "import emfix.cli\nemfix.cli.run()\n"  # run(): exits with main's code (zipapp's own __main__ drops it)


def build(root, target):
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    sources = sorted(os.path.relpath(os.path.join(folder, name), root)
                     for folder, dirs, files in os.walk(os.path.join(root, "emfix"))
                     for name in files if name.endswith(".py") and "__pycache__" not in folder)
    os.makedirs(os.path.dirname(os.path.abspath(target)) or ".", exist_ok=True)
    temp = target + ".tmp"
    with open(temp, "wb") as handle:
        handle.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            entries = [("__main__.py", MAIN.encode())]
            for path in sources:
                name, data = path.replace(os.sep, "/"), open(os.path.join(root, path), "rb").read()
                entries += [(name, data), (name + "c", bytecode(name, data))]
            for name, data in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.create_system = 3  # unix, whatever machine builds it
                archive.writestr(info, data)
    os.chmod(temp, 0o755)
    os.replace(temp, target)
    digest = hashlib.sha256(open(target, "rb").read()).hexdigest()
    with open(target + ".sha256", "w") as handle:
        handle.write("%s  %s\n" % (digest, os.path.basename(target)))
    return digest


def bytecode(name, source):
    """A hash-based .pyc of `source`, checked against it at import (PEP 552), as py_compile writes one."""
    code = compile(source, name, "exec", dont_inherit=True)
    flags = 0b11  # hash-based, checked
    return (importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + importlib.util.source_hash(source)
            + marshal.dumps(code))


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        # marshal gives an object a back-reference by its reference count, which hash randomisation moves (the
        # order of dict growth, of garbage collection): Python 3.8 built demo.pyc two ways, one build in six (CI's
        # two-builds test). One fixed seed: the same interpreter does the same thing each time.
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED="0"))
    out = sys.argv[1] if len(sys.argv) > 1 else "dist/emfix.pyz"
    print("%s  %s (%d bytes)" % (build(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), out), out,
                                 os.path.getsize(out)))
