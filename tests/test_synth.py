"""vcpred synth: manifest schema, ROI, DICOM/NIfTI geometry, determinism, risk model, errors."""

from __future__ import annotations

import filecmp
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from sklearn.metrics import roc_auc_score

from vcpred.cohort import load_manifest
from vcpred.synth import generate_cohort
from vcpred.synth.patient import PatientSpec, draw_outcome, simulate
from vcpred.synth.tissues import CLEFT, CSF, EDEMA, FAT, MARROW, NUCLEUS

SIZE = 96  # px: tiny images keep the tests fast; geometry code is the same as at full size


@pytest.fixture(scope="module")
def dicom_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    generate_cohort(out, n_development=3, n_external=2, seed=7, sequences=("t2", "t1"), size=SIZE)
    return out


def regenerate(record, seed: int = 7):
    """Re-simulate a manifest patient in memory (same seed and size as the fixture)."""
    set_name, index = record.set, int(record.patient_id[3:]) - 1
    return simulate(PatientSpec(seed, set_name, index, record.patient_id), ("t2", "t1"), SIZE)


def read_dicom_canonical(folder: Path) -> tuple[np.ndarray, list[pydicom.Dataset]]:
    """What a correct reader does: sort by position along the normal, then orient to canonical."""
    datasets = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    iop = np.array(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda d: float(np.dot(d.ImagePositionPatient, normal)))
    volume = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets])
    # Canonical slices run towards patient left (+L); the normal of this IOP points to -L.
    if normal[0] < 0:
        volume, datasets = volume[::-1], datasets[::-1]
    assert list(iop) == [0, 1, 0, 0, 0, -1]  # rows already go +P, columns -S: canonical in-plane
    return volume, datasets


def test_manifest_passes_the_cohort_schema(dicom_cohort: Path):
    cohort = load_manifest(dicom_cohort / "manifest.csv")
    assert len(cohort) == 5 and cohort.sequences == ["t2", "t1"]
    assert cohort.ids("external") == ["ext0001", "ext0002"]
    assert cohort.clinical_columns == {"age": "numeric", "sex": "categorical", "bmi": "numeric",
                                       "bmd_tscore": "numeric", "steroid": "numeric",
                                       "diabetes": "numeric", "days_to_mri": "numeric"}
    dev_sites = {r.site for r in cohort.subset("development")}
    ext_sites = {r.site for r in cohort.subset("external")}
    assert ext_sites and not dev_sites & ext_sites  # the external site is unseen in development
    for record in cohort.records:
        assert record.label in (0, 1) and record.level in {"T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"}
        assert record.images["t2"].is_dir() and len(list(record.images["t2"].glob("*.dcm"))) >= 11
    header = (dicom_cohort / "manifest.csv").read_text().splitlines()[0]
    assert "true_probability" not in header and "cleft" not in header
    truth = (dicom_cohort / "truth.csv").read_text().splitlines()
    assert truth[0].startswith("patient_id,set,site,level,true_probability,true_logit")
    assert ",label," not in truth[0]  # labels live in the manifest only
    assert [line.split(",")[0] for line in truth[1:]] == cohort.ids()


def test_dicom_round_trip_pydicom_and_roi_contains_fractured_body(dicom_cohort: Path):
    cohort = load_manifest(dicom_cohort / "manifest.csv")
    for record in cohort.records:
        truth = regenerate(record)
        for sequence in ("t2", "t1"):
            volume, datasets = read_dicom_canonical(record.images[sequence])
            slope, intercept = truth.site.rescale
            expected = truth.volumes[sequence] * slope + intercept
            np.testing.assert_array_equal(volume, expected)   # pixel-identical, same orientation
            assert [d.InstanceNumber for d in datasets] == list(range(1, len(datasets) + 1))
        roi = record.roi
        body = truth.fracture[roi.slice]
        rows, cols = np.nonzero(body)
        assert rows.size > 20, "fractured body must be visible on the ROI slice"
        assert roi.row_min <= rows.min() and rows.max() < roi.row_max
        assert roi.col_min <= cols.min() and cols.max() < roi.col_max
        # A modest box: at most a few pixels of margin around the body.
        assert roi.row_max - roi.row_min <= rows.max() - rows.min() + 1 + 8
        assert roi.col_max - roi.col_min <= cols.max() - cols.min() + 1 + 8
        # ROI slice = the fractured body's widest (central) sagittal section.
        areas = truth.fracture.sum(axis=(1, 2))
        assert areas[roi.slice] >= 0.9 * areas.max()


def test_dicom_series_reads_with_simpleitk_gdcm(dicom_cohort: Path):
    cohort = load_manifest(dicom_cohort / "manifest.csv")
    for record in cohort.records:
        truth = regenerate(record)
        reader = sitk.ImageSeriesReader()
        folder = str(record.images["t2"])
        (series_id,) = reader.GetGDCMSeriesIDs(folder)
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, series_id))
        image = reader.Execute()
        g = truth.geometry
        assert image.GetSize() == (g.n_cols, g.n_rows, g.n_slices)
        np.testing.assert_allclose(image.GetSpacing(), (g.pixel_mm, g.pixel_mm, g.spacing_mm), atol=1e-4)
        direction = np.array(image.GetDirection()).reshape(3, 3)  # columns: i, j, k axes in LPS
        np.testing.assert_allclose(direction[:, 0], [0, 1, 0], atol=1e-6)    # columns -> +P
        np.testing.assert_allclose(direction[:, 1], [0, 0, -1], atol=1e-6)   # rows -> -S
        assert abs(direction[0, 2]) == pytest.approx(1.0)                    # slices along L
        array = sitk.GetArrayFromImage(image).astype(float)                   # [k, r, c]
        if direction[0, 2] < 0:      # GDCM sorted along the normal (-L): flip to canonical
            array = array[::-1]
        first_slice_l = truth.origin_lps[0] + (0 if direction[0, 2] > 0 else (g.n_slices - 1) * g.spacing_mm)
        np.testing.assert_allclose(image.GetOrigin(), (first_slice_l, *truth.origin_lps[1:]), atol=1e-3)
        slope, intercept = truth.site.rescale
        np.testing.assert_allclose(array, truth.volumes["t2"] * slope + intercept, atol=1e-3)


def test_dicom_headers_are_consistent_mr_objects(dicom_cohort: Path):
    cohort = load_manifest(dicom_cohort / "manifest.csv")
    record = cohort.records[0]
    all_sops = set()
    for sequence in ("t2", "t1"):
        _, datasets = read_dicom_canonical(record.images[sequence])
        first = datasets[0]
        assert first.SOPClassUID == pydicom.uid.MRImageStorage
        assert first.file_meta.MediaStorageSOPClassUID == pydicom.uid.MRImageStorage
        assert first.PatientID == record.patient_id and first.PatientName.family_name == "SYNTHETIC"
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "Manufacturer",
                    "MagneticFieldStrength", "SeriesDescription", "PixelSpacing", "SliceThickness",
                    "SpacingBetweenSlices"):
            assert len({str(getattr(d, key)) for d in datasets}) == 1, key
        positions = np.array([d.ImagePositionPatient for d in datasets], float)
        steps = np.diff(positions, axis=0)
        np.testing.assert_allclose(steps, [[float(first.SpacingBetweenSlices), 0, 0]] * len(steps), atol=1e-3)
        sops = {d.SOPInstanceUID for d in datasets}
        assert len(sops) == len(datasets)
        all_sops |= sops
    studies = {pydicom.dcmread(next(record.images[s].glob("*.dcm"))).StudyInstanceUID for s in ("t2", "t1")}
    series = {pydicom.dcmread(next(record.images[s].glob("*.dcm"))).SeriesInstanceUID for s in ("t2", "t1")}
    assert len(studies) == 1 and len(series) == 2 and len(all_sops) == 2 * len(datasets)


def test_nifti_affine_matches_the_canonical_array(tmp_path: Path):
    out = tmp_path / "nifti"
    generate_cohort(out, n_development=1, n_external=1, seed=3, fmt="nifti", sequences=["t2"], size=64)
    cohort = load_manifest(out / "manifest.csv")
    for record in cohort.records:
        truth = simulate(PatientSpec(3, record.set, 0, record.patient_id), ("t2",), 64)
        image = nib.load(record.images["t2"])
        assert record.images["t2"].name == "t2.nii.gz"
        assert record.images["t2"].parent.name == record.patient_id
        assert nib.aff2axcodes(image.affine) == ("L", "I", "P")  # slices +L, rows -S, cols +P
        slope, intercept = truth.site.rescale
        expected = np.rint(truth.volumes["t2"] * slope + intercept)
        np.testing.assert_array_equal(np.asarray(image.dataobj), expected)
        # Voxel (k, r, c) sits where the DICOM geometry puts it: LPS origin + k*dk*L + c*p*P - r*p*S.
        g, (ox, oy, oz) = truth.geometry, truth.origin_lps
        k, r, c = 2, 5, 7
        lps = np.array([ox + k * g.spacing_mm, oy + c * g.pixel_mm, oz - r * g.pixel_mm])
        ras = image.affine @ [k, r, c, 1]
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-6)
        # SimpleITK (LPS) agrees: NIfTI index (i, j, k) = canonical (slice, row, col).
        itk = sitk.ReadImage(str(record.images["t2"]))
        np.testing.assert_allclose(itk.TransformIndexToPhysicalPoint((k, r, c)), lps, atol=1e-3)


def test_same_seed_identical_whatever_the_jobs_and_other_seed_differs(tmp_path: Path):
    kwargs = dict(n_development=2, n_external=1, seed=11, sequences=("t2",), size=48)
    generate_cohort(tmp_path / "a", jobs=1, **kwargs)
    generate_cohort(tmp_path / "b", jobs=2, **kwargs)
    compare = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 20
    for relative in files_a:  # byte-identical CSVs, DICOM headers (UIDs) and pixels
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative
    assert not compare.diff_files
    generate_cohort(tmp_path / "c", **{**kwargs, "seed": 12})
    manifest_a = (tmp_path / "a" / "manifest.csv").read_text().splitlines()[1:]
    manifest_c = (tmp_path / "c" / "manifest.csv").read_text().splitlines()[1:]
    assert all(a != c for a, c in zip(manifest_a, manifest_c))


def test_patient_does_not_depend_on_cohort_size():
    small = simulate(PatientSpec(5, "external", 1, "ext0002"), ("t2",), 48)
    again = simulate(PatientSpec(5, "external", 1, "ext0002"), ("t2", "t1"), 48)
    np.testing.assert_array_equal(small.volumes["t2"], again.volumes["t2"])
    assert small.clinical == again.clinical and small.roi == again.roi


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_prevalence_and_bayes_auc_in_range_on_a_study_sized_cohort(seed: int):
    """Risk model only (no images): 200 development + 45 external patients per seed."""
    for set_name, n, prevalence_range in (("development", 200, (0.25, 0.46)),
                                           ("external", 45, (0.12, 0.62))):
        risks = [draw_outcome(PatientSpec(seed, set_name, i, "x"))[2] for i in range(n)]
        labels = np.array([r.label for r in risks])
        probability = np.array([r.probability for r in risks])
        assert prevalence_range[0] <= labels.mean() <= prevalence_range[1]
        if set_name == "development":
            assert 0.82 <= roc_auc_score(labels, probability) <= 0.96
            # Images carry most of the signal: image terms alone beat clinical terms alone.
            image = roc_auc_score(labels, [r.image_part for r in risks])
            clinical = roc_auc_score(labels, [r.clinical_part for r in risks])
            assert image > clinical + 0.05 and clinical > 0.55


def test_mean_prevalence_and_bayes_auc_over_seeds():
    prevalences, aucs = [], []
    for seed in range(10):
        risks = [draw_outcome(PatientSpec(seed, "development", i, "x"))[2] for i in range(245)]
        labels = np.array([r.label for r in risks])
        prevalences.append(labels.mean())
        aucs.append(roc_auc_score(labels, [r.probability for r in risks]))
    assert 0.30 <= np.mean(prevalences) <= 0.40
    assert 0.85 <= np.mean(aucs) <= 0.95


def test_tissue_contrast_follows_t1_t2_physics():
    """CSF dark on T1 / bright on T2; fat bright on both; edema dark on T1 / bright on T2."""
    found = {}
    with_cleft = [i for i in range(60) if draw_outcome(PatientSpec(21, "development", i, "x"))[1].cleft]
    for index in with_cleft[:8]:
        p = simulate(PatientSpec(21, "development", index, "x"), ("t2", "t1"), 128)

        def mean(seq, tissue, where=True, p=p):
            return float(p.volumes[seq][(p.labels == tissue.id) & where].mean())

        assert mean("t2", CSF) > 1.5 * mean("t2", MARROW) and mean("t1", CSF) < 0.5 * mean("t1", MARROW)
        assert mean("t1", FAT) > mean("t1", MARROW) and mean("t2", FAT) > mean("t2", MARROW)
        assert mean("t2", NUCLEUS) > mean("t2", MARROW) * 0.8
        body = p.fracture  # compare edema with the normal marrow left in the same body
        if (p.labels[body] == EDEMA.id).sum() > 20 and (p.labels[body] == MARROW.id).sum() > 20:
            assert mean("t1", EDEMA, body) < 0.7 * mean("t1", MARROW, body)
            assert mean("t2", EDEMA, body) > 1.1 * mean("t2", MARROW, body)
        assert p.cleft_slices, "a cleft must be visible on some slice"
        assert mean("t2", CLEFT) > mean("t2", MARROW, body) and mean("t1", CLEFT) < mean("t1", MARROW, body)
        found.setdefault("on" if p.roi[0] in p.cleft_slices else "off", index)
    # Some clefts show on the ROI slice, others only on neighbouring slices (evidence off-centre).
    assert "off" in found and "on" in found, found


def test_fast_dicom_encoder_writes_exactly_what_pydicom_writes(dicom_cohort: Path):
    """The spliced-bytes writer must equal pydicom.dcmwrite of the full dataset, byte for byte."""
    import io

    from vcpred.synth.output import series_info
    from vcpred.synth.writers import slice_dataset

    record = load_manifest(dicom_cohort / "manifest.csv").records[-1]
    truth = regenerate(record)
    info = series_info(truth, "t1")
    files = sorted(record.images["t1"].glob("*.dcm"))
    for k in (0, len(files) - 1):
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, slice_dataset(info, truth.volumes["t1"], k), enforce_file_format=True)
        assert files[k].read_bytes() == buffer.getvalue()
