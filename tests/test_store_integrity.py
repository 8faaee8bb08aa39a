"""Issue 14, silent corruption and staleness of the prepared store: content hashes verified on load
and on rerun, parameter changes that never leave a consistent-looking index over mixed files, one
writer per store, the feature cache keyed by content, patient ids too long for a file name."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import patient_row, write_manifest
from test_imaging_store import ROI, cohort_folder, run_prepare
from imaging_support import save_nifti, small_volume
from vcpred.cohort import load_manifest
from vcpred.errors import VcpredError
from vcpred.imaging import PrepareParams, load_prepared, prepare_cohort
from vcpred.imaging.store import npz_path

PARAMS = PrepareParams(size=32, n4_iterations=(5,))


@pytest.fixture
def prepared(tmp_path) -> tuple[Path, Path]:
    """(manifest, store) with three prepared patients P000-P002."""
    manifest = cohort_folder(tmp_path) / "manifest.csv"
    store = tmp_path / "store"
    assert len(prepare_cohort(load_manifest(manifest), store, PARAMS).prepared) == 3
    return manifest, store


def flip_byte(path: Path, position: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if position is None else position
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def index_of(store: Path) -> dict:
    return json.loads((store / "index.json").read_text())


def test_damaged_files_are_named_on_load_and_prepared_again_on_rerun(prepared, capsys):
    """A truncated or byte-flipped npz was 'skipped unchanged' on rerun and crashed training later
    with BadZipFile naming no patient."""
    manifest, store = prepared
    truncated, flipped = npz_path(store, "P000"), npz_path(store, "P001")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    flip_byte(flipped)
    for pid in ("P000", "P001"):
        with pytest.raises(VcpredError, match=rf"patient '{pid}'.*(damaged|changed).*vcpred prepare"):
            load_prepared(store, pid)
    assert load_prepared(store, "P002").frames.shape == (5, 3, 32, 32)
    capsys.readouterr()
    assert run_prepare(manifest, store) == 0
    out = capsys.readouterr()
    assert "prepared 2, skipped 1 unchanged" in out.out and "P000" in out.err and "P001" in out.err
    for pid in ("P000", "P001"):
        assert load_prepared(store, pid).frames.shape == (5, 3, 32, 32)


def test_a_file_copied_over_another_patients_is_refused(prepared):
    manifest, store = prepared
    shutil.copyfile(npz_path(store, "P001"), npz_path(store, "P000"))
    with pytest.raises(VcpredError, match=r"patient 'P000'"):
        load_prepared(store, "P000")
    # Even with the index entry copied too (hash and all), the id inside the file gives it away.
    index = index_of(store)
    index["patients"]["P000"] = dict(index["patients"]["P001"], file=index["patients"]["P000"]["file"])
    (store / "index.json").write_text(json.dumps(index))
    with pytest.raises(VcpredError, match=r"patient 'P000'.*holds patient 'P001'"):
        load_prepared(store, "P000")
    summary = prepare_cohort(load_manifest(manifest), store, PARAMS)
    assert summary.prepared == ["P000"]
    assert load_prepared(store, "P000").patient_id == "P000"


def test_the_index_records_each_files_hash_and_params(prepared):
    from vcpred.hashing import sha256_file

    _, store = prepared
    index = index_of(store)
    assert index["version"] == 2
    for pid, entry in index["patients"].items():
        assert entry["sha256"] == sha256_file(npz_path(store, pid))
        assert entry["params"] == index["params"] == PARAMS.to_dict()


def test_an_interrupted_parameter_change_never_reads_as_consistent(prepared, monkeypatch):
    """Interrupting prepare during a change of --size left index.json saying 'size 24, all ok' over
    a mix of 32 and 24 px files, and training read them silently."""
    manifest, store = prepared
    import vcpred.imaging.batch as batch

    real, calls = batch.prepare_patient, []

    def interrupted_after_one(record, params):
        if calls:
            raise KeyboardInterrupt
        calls.append(record.patient_id)
        return real(record, params)

    monkeypatch.setattr(batch, "prepare_patient", interrupted_after_one)
    new = PrepareParams(size=24, n4_iterations=(5,))
    with pytest.raises(KeyboardInterrupt):
        prepare_cohort(load_manifest(manifest), store, new)
    index = index_of(store)
    assert index["params"]["size"] == 24
    stale = [pid for pid, e in index["patients"].items() if e.get("params") != index["params"]]
    assert len(stale) == 2 and all(index["patients"][pid]["status"] != "ok" for pid in stale)
    assert load_prepared(store, calls[0]).frames.shape[-1] == 24
    for pid in stale:
        with pytest.raises(VcpredError, match=rf"patient '{pid}'.*other (preparation )?parameters.*vcpred prepare"):
            load_prepared(store, pid)
    monkeypatch.setattr(batch, "prepare_patient", real)
    summary = prepare_cohort(load_manifest(manifest), store, new)
    assert sorted(summary.prepared) == sorted(stale) and summary.skipped == calls
    assert {load_prepared(store, pid).frames.shape[-1] for pid in ("P000", "P001", "P002")} == {24}


def test_an_entry_made_with_other_params_than_the_index_is_refused(prepared):
    """Readers check the file's params against the index's, whatever wrote the index."""
    _, store = prepared
    index = index_of(store)
    index["patients"]["P001"]["params"] = dict(index["params"], size=96)
    (store / "index.json").write_text(json.dumps(index))
    with pytest.raises(VcpredError, match=r"patient 'P001'.*other (preparation )?parameters"):
        load_prepared(store, "P001")


def test_a_second_prepare_into_a_busy_store_is_refused(prepared, monkeypatch, capsys):
    """Two prepares into one store (here with different --size) lost index entries and left a
    file of one size under an index of the other."""
    manifest, store = prepared
    import vcpred.imaging.batch as batch

    real, nested = batch.prepare_patient, []

    def second_prepare_meanwhile(record, params):
        result = real(record, params)
        if not nested:
            nested.append(None)  # the nested prepare calls this too
            nested[0] = run_prepare(manifest, store, "--size", "24", "--force")
        return result

    monkeypatch.setattr(batch, "prepare_patient", second_prepare_meanwhile)
    assert prepare_cohort(load_manifest(manifest), store, PARAMS, force=True).failed == {}
    assert nested == [2]
    assert "another vcpred prepare" in capsys.readouterr().err
    index = index_of(store)
    assert index["params"]["size"] == 32 and {e["status"] for e in index["patients"].values()} == {"ok"}
    assert {load_prepared(store, pid).frames.shape[-1] for pid in index["patients"]} == {32}


def test_index_saves_merge_with_the_index_on_disk(prepared):
    """An index update writes this run's entries over the index on disk, never a stale copy of it."""
    from vcpred.imaging.store import store_lock, update_index

    _, store = prepared
    with store_lock(store):
        update_index(store, PARAMS.to_dict(), {"P999": {"status": "failed", "error": "x", "params": PARAMS.to_dict()}})
        update_index(store, PARAMS.to_dict(), {"P998": {"status": "failed", "error": "y", "params": PARAMS.to_dict()}})
    assert {"P000", "P001", "P002", "P998", "P999"} == set(index_of(store)["patients"])


def test_a_store_from_an_earlier_vcpred_says_prepare_again(prepared):
    manifest, store = prepared
    index = index_of(store)
    index["version"] = 1
    for entry in index["patients"].values():
        del entry["sha256"], entry["params"]
    (store / "index.json").write_text(json.dumps(index))
    with pytest.raises(VcpredError, match="earlier vcpred.*vcpred prepare"):
        load_prepared(store, "P000")
    assert len(prepare_cohort(load_manifest(manifest), store, PARAMS).prepared) == 3
    assert load_prepared(store, "P000").frames.shape == (5, 3, 32, 32)


def test_feature_cache_key_follows_the_content_not_size_and_mtime(tmp_path):
    """The frozen-feature cache was keyed by each npz's size and mtime: the same size and mtime with
    other bytes reused features computed from the old frames."""
    from tiny_store import build_tiny_cohort
    from vcpred.imaging.store import record_prepared, write_prepared
    from vcpred.models import ModelSpec, create_model
    from vcpred.training.features import cache_key

    manifest, store, _ = build_tiny_cohort(tmp_path / "tiny", n_development=6, n_external=2)
    ids = load_manifest(manifest).ids()
    built = create_model(ModelSpec(backbone="resnet_test", weights="random", method="linear"))
    before = cache_key(built, store, ids)
    path = npz_path(store, "P000")
    stat = path.stat()
    old = load_prepared(store, "P000")
    old.frames = old.frames[::-1].copy()  # same shapes, so the same file size
    write_prepared(store, old)
    record_prepared(store, "P000")  # as prepare records a file it wrote
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert cache_key(built, store, ids) != before
    flip_byte(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(VcpredError, match="patient 'P000'"):
        cache_key(built, store, ids)


def test_a_patient_id_too_long_for_a_file_name_is_prepared(tmp_path, capsys):
    """`File name too long` aborted the whole prepare run."""
    folder = tmp_path / "cohort"
    long_id = "P" + "x" * 300
    rows = []
    for i, pid in enumerate(["P000", long_id, "P002"]):
        save_nifti(small_volume(seed=i), folder / f"images/{i}.nii.gz")
        rows.append(patient_row(i, patient_id=pid, image_t2=f"images/{i}.nii.gz", **ROI))
    manifest = write_manifest(folder, rows, make_images=False)
    store = tmp_path / "store"
    assert run_prepare(manifest, store) == 0, capsys.readouterr().err
    assert "prepared 3" in capsys.readouterr().out
    assert load_prepared(store, long_id).patient_id == long_id
    assert len(npz_path(store, long_id).name) < 200
    assert run_prepare(manifest, store) == 0 and "skipped 3 unchanged" in capsys.readouterr().out


def test_the_store_params_are_read_only_from_a_current_checked_index(prepared, tmp_path):
    # export, the report and training read the preparation params through this one function
    from vcpred.imaging.store import store_params

    _, store = prepared
    assert store_params(store) == index_of(store)["params"]
    with pytest.raises(VcpredError, match="not a prepared store"):
        store_params(tmp_path / "nowhere")
    index = index_of(store)
    index["version"] = 1
    (store / "index.json").write_text(json.dumps(index))
    with pytest.raises(VcpredError, match="earlier vcpred"):
        store_params(store)


def test_a_process_reads_an_unchanged_patient_once_and_a_changed_one_again(prepared, monkeypatch):
    """Issue 25: an experiment's worker reads the store for every run; it parses each file once."""
    from vcpred.imaging import store as store_module

    _, store = prepared
    first = load_prepared(store, "P001")
    assert not first.frames.flags.writeable  # the process's copy cannot be changed by a caller
    first.provenance["changed by a caller"] = True
    real = store_module._verified_bytes
    monkeypatch.setattr(store_module, "_verified_bytes", lambda *a: pytest.fail("read the file again"))
    again = load_prepared(store, "P001")
    assert again.frames is first.frames and "changed by a caller" not in again.provenance
    assert store_module.prepared_offsets(store, "P001").tolist() == first.frame_offsets.tolist()
    monkeypatch.setattr(store_module, "_verified_bytes", real)
    path = npz_path(store, "P001")
    flip_byte(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # however coarse the clock
    with pytest.raises(VcpredError, match=r"patient 'P001'.*(damaged|changed)"):
        load_prepared(store, "P001")


def test_the_process_keeps_the_most_recent_patients_within_its_byte_bound(prepared, monkeypatch):
    from vcpred.imaging import store as store_module

    _, store = prepared
    monkeypatch.setattr(store_module, "_prepared_cache", store_module.OrderedDict())
    monkeypatch.setattr(store_module, "_prepared_cache_bytes", 0)
    one = load_prepared(store, "P000")
    size = sum(a.nbytes for a in vars(one).values() if hasattr(a, "nbytes"))
    monkeypatch.setattr(store_module, "PREPARED_CACHE_BYTES", 2 * size)  # room for two patients
    for pid in ("P001", "P000", "P002"):  # P000 read again: P001 is now the least recently used
        load_prepared(store, pid)
    kept = [Path(key).name for key in store_module._prepared_cache]
    assert kept == [npz_path(store, "P000").name, npz_path(store, "P002").name]
    assert store_module._prepared_cache_bytes == sum(item[3] for item in store_module._prepared_cache.values())
