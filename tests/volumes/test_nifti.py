"""``.nii.gz`` files are inflated by ISA-L where it is installed, by the standard library
otherwise, with the same voxels; nibabel itself is left as the user had it."""

import json
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest
from nibabel.openers import ImageOpener

from sklearn_dinoatten.volumes import read_scan


@pytest.fixture
def scan_file(tmp_path):
    volume = np.random.default_rng(0).integers(-500, 3000, size=(40, 30, 20), dtype=np.int16)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([0.9, 1.0, 1.2, 1.0])), path)
    return path, volume


def test_isal_and_the_standard_library_read_the_same_voxels(scan_file, monkeypatch):
    from sklearn_dinoatten.volumes._nifti import fast_gzip

    path, volume = scan_file
    assert fast_gzip() is not None  # the test set-up installs isal
    fast = read_scan(path)
    monkeypatch.setitem(sys.modules, "isal", None)  # as if not installed
    assert fast_gzip() is None
    plain = read_scan(path)
    np.testing.assert_array_equal(fast.voxels.numpy(), volume)
    np.testing.assert_array_equal(plain.voxels.numpy(), fast.voxels.numpy())
    assert plain.digest() == fast.digest()


def damaged_copies(path):
    """A good ``.nii.gz`` and its damaged copies: cut in half, without its gzip trailer,
    with a wrong CRC, with bytes after the end."""
    data = path.read_bytes()
    crc = bytearray(data)
    crc[-8] ^= 0xFF  # the trailer: CRC32 (4 bytes), then the size
    copies = {"good": data, "truncated": data[: len(data) // 2], "no trailer": data[:-8],
              "bad CRC": bytes(crc), "trailing garbage": data + b"garbage after the end"}
    paths = {}
    for name, content in copies.items():
        paths[name] = path.with_name(name.replace(" ", "_") + ".nii.gz")
        paths[name].write_bytes(content)
    return paths


def test_reading_a_scan_leaves_nibabel_as_the_user_had_it(scan_file):
    """The user's own nibabel reads of good and damaged files give the same results, in
    a fresh process, before and after the package reads a scan (before: ISA-L was put
    into nibabel's ImageOpener for the whole process, and a bad CRC then raised where it
    read, a truncated file said "Cannot work out file type")."""
    path, _ = scan_file
    paths = {name: str(p) for name, p in damaged_copies(path).items()}
    script = textwrap.dedent(f"""
        import json, zlib
        import nibabel as nib
        from nibabel.openers import ImageOpener

        def reads(paths):
            out = {{}}
            for name, path in paths.items():
                try:
                    data = nib.load(path).get_fdata()
                    out[name] = "read, crc32 %d" % zlib.crc32(data.tobytes())
                except Exception as exc:
                    out[name] = type(exc).__name__ + ": " + str(exc)
            return out

        paths = {json.dumps(paths)}
        before, openers = reads(paths), dict(ImageOpener.compress_ext_map)
        from sklearn_dinoatten.volumes import read_scan
        read_scan(paths["good"])
        print(json.dumps([before, reads(paths), openers == ImageOpener.compress_ext_map]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    before, after, openers_unchanged = json.loads(result.stdout)
    assert after == before and openers_unchanged
    assert before["good"].startswith("read") and before["truncated"] != before["good"]


def test_the_package_reads_every_file_as_nibabel_does(scan_file):
    """The same voxels where nibabel reads a damaged file (bytes after the end: ISA-L
    alone refuses it), an error naming the file where nibabel fails."""
    path, _ = scan_file
    for name, damaged in damaged_copies(path).items():
        try:
            expected = nib.load(damaged).dataobj.get_unscaled()
        except Exception:  # nibabel cannot read it: neither can the package
            with pytest.raises(ValueError, match=damaged.name):
                read_scan(damaged)
        else:
            np.testing.assert_array_equal(read_scan(damaged).voxels.numpy(), expected,
                                          err_msg=name)


def test_writing_stays_nibabels(tmp_path, scan_file):
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), np.eye(4))
    nib.save(image, tmp_path / "before.nii.gz")
    openers = dict(ImageOpener.compress_ext_map)
    read_scan(scan_file[0])
    nib.save(image, tmp_path / "after.nii.gz")
    assert (tmp_path / "after.nii.gz").read_bytes() == (tmp_path / "before.nii.gz").read_bytes()
    assert dict(ImageOpener.compress_ext_map) == openers


def test_a_damaged_gzip_file_is_named(tmp_path):
    path = tmp_path / "damaged.nii.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(ValueError, match="damaged.nii.gz"):
        read_scan(path)
