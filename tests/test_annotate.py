"""`vcpred annotate` over HTTP (starlette's test client, issue 18): a save rewrites only that
patient's roi_* cells (every other byte kept: quoting, spaces, CRLF, a BOM, blank lines), keeps the
original once as MANIFEST.bak, needs the page's header, refuses a box outside the image and a file
changed meanwhile, counts progress; a second session on the same manifest is refused (the lock); an
unreadable manifest exits 2; an unreadable series is that patient's error only; and a box saved
through annotate makes `prepare` crop exactly what the same box typed into the manifest does.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from vcpred.cli import main
from vcpred.cohort import load_manifest
from vcpred.locking import Busy
from vcpred.serve.annotate_app import create_annotate_app
from vcpred.serve.annotate_manifest import located, records
from vcpred.serve.annotate_session import AnnotateSession, annotation_lock
from vcpred.serve.settings import ServeSettings
from vcpred.synth import generate_cohort

BASE = "http://127.0.0.1:8000"
PAGE = {"X-Vcpred-Request": "1"}
ROI_CELLS = 5  # the synthetic manifest's last five columns are roi_slice .. roi_col_max


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """Three development patients (64 x 64 DICOM series) with their true ROIs."""
    out = tmp_path_factory.mktemp("annotate") / "cohort"
    generate_cohort(out, n_development=3, n_external=0, sequences=("t2",), size=64)
    return out


def blank_rois(text: str) -> str:
    """The manifest with every patient's five ROI cells emptied (the header kept)."""
    lines = text.splitlines(keepends=True)
    return lines[0] + "".join(",".join(line.rstrip("\r\n").split(",")[:-ROI_CELLS] + [""] * ROI_CELLS)
                              + line[len(line.rstrip("\r\n")):] for line in lines[1:])


def true_rois(text: str) -> list[list[int]]:
    return [[int(v) for v in line.split(",")[-ROI_CELLS:]] for line in text.splitlines()[1:]]


@pytest.fixture
def cohort(synthetic, tmp_path) -> Path:
    """A copy of the synthetic cohort whose ROI columns are blank; returns its manifest."""
    folder = tmp_path / "cohort"
    shutil.copytree(synthetic, folder)
    manifest = folder / "manifest.csv"
    manifest.write_text(blank_rois(manifest.read_text()))
    return manifest


@contextlib.contextmanager
def annotating(manifest: Path, tmp_path: Path):
    app = create_annotate_app(AnnotateSession.open(manifest), ServeSettings(workdir=tmp_path, port=8000))
    with TestClient(app, base_url=BASE) as client:
        yield client


def open_patient(client, index: int) -> dict:
    answer = client.post(f"/api/annotate/patients/{index}/open", headers=PAGE)
    assert answer.status_code == 201, answer.text
    return answer.json()


def save(client, index: int, roi: list[int], headers=PAGE, version: int | None = None):
    """Save as the page does, with the row version it saw (default: the current one)."""
    if version is None:
        version = client.get("/api/annotate").json()["patients"][index]["version"]
    return client.post(f"/api/annotate/patients/{index}/roi", headers=headers,
                       json={"slice": roi[0], "box": roi[1:], "version": version})


def test_saving_every_true_roi_gives_back_the_original_manifest_byte_for_byte(synthetic, cohort, tmp_path):
    original = (synthetic / "manifest.csv").read_text()
    with annotating(cohort, tmp_path) as client:
        assert client.get("/api/annotate").json()["annotated"] == 0
        for index, roi in enumerate(true_rois(original)):
            chosen = open_patient(client, index)["chosen"]
            assert chosen["shape"][1:] == [64, 64] and len(chosen["instance_numbers"]) == chosen["shape"][0]
            answer = save(client, index, roi)
            assert answer.status_code == 200, answer.text
            assert answer.json()["annotated"] == index + 1 and answer.json()["total"] == 3
            assert answer.json()["patient"]["roi"] == {"slice": roi[0], "box": roi[1:]}
        state = client.get("/api/annotate").json()
    assert cohort.read_text() == original
    assert (state["annotated"], state["total"]) == (3, 3)
    assert [p["roi"]["slice"] for p in state["patients"]] == [r[0] for r in true_rois(original)]
    assert main(["cohort", "check", str(cohort)]) == 0


def awkward(text: str) -> bytes:
    """The manifest with a BOM, CRLF line endings, a blank line, a quoted cell holding a comma and
    a line break, and spaces after commas: all of which a save must leave as they are."""
    lines = text.splitlines()
    header = lines[0] + ",note"
    rows = [lines[1] + ', "left, then\nright"', "", lines[2] + ',"say ""hi"""', lines[3] + ",  plain"]
    return ("\ufeff" + "\r\n".join([header, *rows]) + "\r\n").encode("utf-8")


def test_a_save_changes_only_that_patients_roi_cells(cohort, tmp_path):
    data = awkward(cohort.read_text())
    cohort.write_bytes(data)
    cohort.chmod(0o640)
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 1)
        assert save(client, 1, [4, 10, 11, 30, 40]).status_code == 200
    line = data.split(b"\r\n")[3]  # patient 2: after the header, a row with a line break in quotes, a blank line
    assert line.startswith(b"dev0002,") and line.endswith(b',,,,,"say ""hi"""')
    expected = data.replace(line, line.replace(b'/t2,,,,,,"say', b'/t2,4,10,11,30,40,"say'))
    assert cohort.read_bytes() == expected
    assert cohort.stat().st_mode & 0o777 == 0o640
    assert [r.line for r in records(expected)][:5] == [1, 2, 4, 5, 6]


def test_the_original_is_kept_once_as_a_backup(cohort, tmp_path):
    original = cohort.read_bytes()
    backup = cohort.with_name("manifest.csv.bak")
    names = sorted(p.name for p in cohort.parent.iterdir())
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 0)
        assert not backup.exists()
        assert save(client, 0, [5, 10, 10, 30, 30]).status_code == 200
        assert backup.read_bytes() == original
        assert save(client, 0, [6, 12, 12, 32, 32]).status_code == 200
        assert backup.read_bytes() == original  # not overwritten by later saves
    assert b",6,12,12,32,32" in cohort.read_bytes() and b",5,10,10,30,30" not in cohort.read_bytes()
    # a later session keeps the first backup too
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 1)
        assert save(client, 1, [5, 10, 10, 30, 30]).status_code == 200
    assert backup.read_bytes() == original
    assert sorted(p.name for p in cohort.parent.iterdir()) == sorted(names + [backup.name])  # no temporary left


def test_a_manifest_reached_through_a_link_is_written_where_it_lives(cohort, tmp_path):
    link = cohort.with_name("current.csv")  # image paths count from the link's folder, as for prepare
    link.symlink_to(cohort.name)
    original = cohort.read_bytes()
    with annotation_lock(link), annotating(link, tmp_path) as client:
        with pytest.raises(Busy):  # the same lock as through the file's own name
            with annotation_lock(cohort):
                pass
        open_patient(client, 0)
        assert save(client, 0, [5, 10, 10, 30, 30]).status_code == 200
    assert link.is_symlink() and b",5,10,10,30,30" in cohort.read_bytes()
    assert cohort.with_name("manifest.csv.bak").read_bytes() == original and not link.with_name("current.csv.bak").exists()


def test_a_save_needs_the_page_header_the_servers_host_and_a_small_json_body(cohort, tmp_path):
    before = cohort.read_bytes()
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 0)
        refused = save(client, 0, [5, 10, 10, 30, 30], headers={})
        assert refused.status_code == 403 and "X-Vcpred-Request" in refused.json()["error"]
        cross = save(client, 0, [5, 10, 10, 30, 30], headers={**PAGE, "Origin": "http://evil.example"})
        assert cross.status_code == 403
        rebinding = save(client, 0, [5, 10, 10, 30, 30], headers={**PAGE, "Host": "evil.example:8000"})
        assert rebinding.status_code == 421
        as_text = client.post("/api/annotate/patients/0/roi", headers={**PAGE, "Content-Type": "text/plain"},
                              content=b'{"slice": 5, "box": [10, 10, 30, 30]}')
        assert as_text.status_code == 415
        huge = client.post("/api/annotate/patients/0/roi", headers={**PAGE, "Content-Type": "application/json"},
                           content=b'{"slice": 5, "box": [10, 10, 30, 30], "pad": "' + b"x" * 100_000 + b'"}')
        assert huge.status_code == 413  # the JSON body limit of vcpred serve (64 KB)
    assert cohort.read_bytes() == before and not cohort.with_name("manifest.csv.bak").exists()


@pytest.mark.parametrize("roi, status, says", [
    ([5, 10, 10, 70, 30], 422, "outside the 64 x 64 image"),
    ([5, -1, 10, 30, 30], 422, "outside"),
    ([99, 10, 10, 30, 30], 422, "outside the volume"),
    ([5, 10, 10, 12, 30], 422, "smaller than 4 pixels"),
])
def test_a_box_outside_the_image_is_refused(cohort, tmp_path, roi, status, says):
    before = cohort.read_bytes()
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 0)
        answer = save(client, 0, roi)
        assert answer.status_code == status and says in answer.json()["error"], answer.text
        assert client.get("/api/annotate").json()["annotated"] == 0
    assert cohort.read_bytes() == before


def test_a_save_before_the_image_was_read_or_of_an_unknown_patient_is_refused(cohort, tmp_path):
    with annotating(cohort, tmp_path) as client:
        assert save(client, 0, [5, 10, 10, 30, 30]).status_code == 409
        assert save(client, 7, [5, 10, 10, 30, 30], version=0).status_code == 404
        wrong = client.post("/api/annotate/patients/0/roi", headers=PAGE, json={"slice": "5", "box": [1, 2, 3, 4]})
        assert wrong.status_code == 422


def test_a_manifest_changed_by_another_program_is_not_overwritten(cohort, tmp_path):
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 0)
        edited = cohort.read_bytes().replace(b"dev0003", b"dev0009")
        cohort.write_bytes(edited)
        answer = save(client, 0, [5, 10, 10, 30, 30])
        assert answer.status_code == 409 and "changed by another program" in answer.json()["error"]
    assert cohort.read_bytes() == edited


def test_a_second_session_on_the_same_manifest_is_refused(cohort, capsys):
    with annotation_lock(cohort):
        with pytest.raises(Busy, match="in use by pid"):
            with annotation_lock(cohort):
                pass
        assert main(["annotate", str(cohort), "--port", "8765"]) == 2
    assert "another vcpred annotate session" in capsys.readouterr().err
    assert not cohort.with_name("manifest.csv.annotate.lock").exists()  # released, nothing left behind


@pytest.mark.parametrize("content, says", [
    ("patient_id;set;image_t2\nP1;development;x\n", "separated by semicolons"),
    ('patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max\nP1,development,"x\n',
     "row 2, patient 'P1': 3 cells"),  # an unclosed quote swallows the rest of the file
    ("patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max\nP1,development,x,1\n",
     "4 cells but the header has 8 columns"),
    ("patient_id,set,image_t2,label\nP1,development,x,1\n", "has no roi_slice"),
    ("patient_id,set,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max\n", "has no patients"),
    (b"patient_id,set\n\xff\xfe,x\n", "not a readable CSV"),
])
def test_an_unreadable_manifest_exits_2_with_one_error_line(tmp_path, capsys, content, says):
    path = tmp_path / "manifest.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["annotate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and "Traceback" not in err, err
    assert main(["annotate", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_unreadable_series_is_that_patients_error_only(cohort, tmp_path):
    folder = cohort.parent / "images" / "dev0002" / "t2"
    for path in folder.iterdir():
        path.write_bytes(b"not DICOM")
    with annotating(cohort, tmp_path) as client:
        failed = client.post("/api/annotate/patients/1/open", headers=PAGE)
        assert failed.status_code == 422 and failed.json()["error"]
        assert open_patient(client, 2)["chosen"]["shape"][1:] == [64, 64]
        assert save(client, 2, [5, 10, 10, 30, 30]).status_code == 200
        assert client.get("/api/annotate").json()["annotated"] == 1


def test_the_page_is_served_in_annotation_mode_without_a_model(cohort, tmp_path):
    with annotating(cohort, tmp_path) as client:
        page = client.get("/")
        assert page.status_code == 200 and 'data-mode="annotate"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/api/model").status_code == 404
        state = client.get("/api/annotate").json()
        assert [p["patient_id"] for p in state["patients"]] == ["dev0001", "dev0002", "dev0003"]
        assert state["sequence"] == "t2" and state["k"] >= 1


def first_patient(manifest: Path, name: str):
    """The manifest's header and first patient as a manifest of its own, loaded (cohort check clean)."""
    lines = manifest.read_text().splitlines(keepends=True)
    alone = manifest.with_name(name)
    alone.write_text(lines[0] + lines[1])
    (record,) = load_manifest(alone).records
    return record


def test_a_box_saved_through_annotate_crops_what_the_same_box_typed_by_hand_does(cohort, tmp_path):
    from vcpred.imaging import prepare_patient

    roi = [6, 18, 25, 30, 39]
    by_hand = cohort.with_name("by_hand.csv")
    by_hand.write_text(cohort.read_text().replace(",,,,,\n", f",{','.join(map(str, roi))}\n", 1))
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 0)
        assert save(client, 0, roi).status_code == 200
    saved, typed = first_patient(cohort, "saved_alone.csv"), first_patient(by_hand, "typed_alone.csv")
    assert saved.patient_id == typed.patient_id == "dev0001"
    assert saved.roi == typed.roi and (saved.roi.slice, *saved.roi.box) == tuple(roi)
    a, b = prepare_patient(saved), prepare_patient(typed)
    assert np.array_equal(a.crop_box, b.crop_box) and np.array_equal(a.frames, b.frames)
    assert list(a.roi_box) == roi[1:] and a.roi_slice == roi[0]


def test_the_command_serves_the_session_holding_the_lock_until_it_stops(cohort, tmp_path):
    import json
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lock = cohort.with_name("manifest.csv.annotate.lock")
    process = subprocess.Popen([sys.executable, "-m", "vcpred", "annotate", str(cohort), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, state = time.monotonic() + 60, None
        while state is None:
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/annotate", timeout=2) as answer:
                    state = json.load(answer)
            except OSError:
                time.sleep(0.2)
        assert (state["annotated"], state["total"]) == (0, 3)
        assert json.loads(lock.read_text())["pid"] == process.pid
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert "0 of 3 patients annotated" in output and f"http://127.0.0.1:{port}/" in output
    assert not lock.exists()


CELL = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\tx1;é')), max_size=6)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(CELL, min_size=2, max_size=4), min_size=1, max_size=5),
       ending=st.sampled_from(["\n", "\r\n", "\r"]), quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
       spaces=st.booleans())
def test_cells_are_located_as_the_csv_module_reads_them(rows, ending, quoting, spaces):
    """Any table csv writes (commas, quotes, line breaks and spaces inside cells; any line ending;
    spaces after commas): each located cell, read on its own, is the cell the reader reads, and a
    record starts on the line the reader counts."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=ending, quoting=quoting).writerows(rows)
    text = out.getvalue().replace(',"', ', "') if spaces else out.getvalue()
    data = text.encode()
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    expected, start = [], 1
    for cells in reader:
        expected.append((start, [c.strip() for c in cells] or [""]))  # a blank line: one empty cell here
        start = reader.line_num + 1
    found = [(r.line, located(data, r)) for r in records(data)]
    assert found == expected or (found[:-1] == expected and found[-1][1] == [""])  # no record after the last break


def test_quoted_or_spaced_roi_cells_are_read_and_replaced_whole(tmp_path):
    from vcpred.serve.annotate_manifest import ManifestFile

    path = tmp_path / "manifest.csv"
    path.write_bytes(b'patient_id,image_t2,roi_slice,roi_row_min,roi_col_min,roi_row_max,roi_col_max,note\n'
                     b'P1,x, "6",7 ,8,"20", 21,"a, b"\n')
    manifest = ManifestFile(path)
    assert manifest.roi_cells(2) == ["6", "7", "8", "20", "21"]
    assert manifest.with_roi(2, ["1", "2", "3", "14", "15"]).endswith(b'P1,x,1,2,3,14,15,"a, b"\n')


def test_a_manifest_from_cohort_init_is_annotated_until_cohort_check_names_no_patient_without_roi(
        synthetic, tmp_path, capsys):
    manifest = tmp_path / "init" / "manifest.csv"
    assert main(["cohort", "init", str(synthetic / "images"), "--out", str(manifest)]) == 0
    assert main(["cohort", "check", str(manifest)]) == 2
    assert "3 patient(s) without ROI" in capsys.readouterr().out
    truth = true_rois((synthetic / "manifest.csv").read_text())
    with annotating(manifest, tmp_path) as client:
        for index, roi in enumerate(truth):
            open_patient(client, index)
            assert save(client, index, roi).status_code == 200
    assert main(["cohort", "check", str(manifest)]) == 2  # labels are still the user's to fill
    out = capsys.readouterr().out
    assert "without ROI" not in out and "roi_" not in out and "without a label" in out


def test_the_annotation_server_loads_no_model_library():
    # annotate needs no model: its app is the viewer shell, without the predict code (torch, timm)
    import subprocess
    import sys

    code = ("import sys, vcpred.serve.annotate_app, vcpred.serve.annotate_command\n"
            "print(sorted(m for m in ('torch', 'timm', 'peft') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stderr


def test_a_save_from_a_page_that_missed_another_save_of_the_row_is_refused(cohort, tmp_path):
    """Two tabs (or clients) on the same patient: the second save names the row version it saw; a
    stale one is 409 with a message, never a silent overwrite (issue 27)."""
    with annotating(cohort, tmp_path) as client:
        open_patient(client, 0)
        seen = client.get("/api/annotate").json()["patients"][0]["version"]
        first = save(client, 0, [3, 10, 10, 30, 30], version=seen)
        assert first.status_code == 200, first.text
        assert first.json()["patient"]["version"] == seen + 1
        stale = save(client, 0, [4, 12, 12, 32, 32], version=seen)
        assert stale.status_code == 409 and "another tab or client" in stale.json()["error"]
        assert true_cells(cohort)[0] == ["3", "10", "10", "30", "30"]
        missing = client.post("/api/annotate/patients/0/roi", headers=PAGE, json={"slice": 4, "box": [12, 12, 32, 32]})
        assert missing.status_code == 422 and "version" in missing.json()["error"]
        again = save(client, 0, [4, 12, 12, 32, 32], version=seen + 1)
        assert again.status_code == 200 and true_cells(cohort)[0] == ["4", "12", "12", "32", "32"]


def true_cells(manifest: Path) -> list[list[str]]:
    return [line.split(",")[-ROI_CELLS:] for line in manifest.read_text().splitlines()[1:]]
