"""`vcpred serve`: a local web viewer. Load a sagittal MRI, draw the ROI, type the clinical values,
see the collapse risk (through `vcpred.predict.predict_patient`, the code `vcpred predict` runs).

Modules: settings (limits), errors (HTTP-mapped user errors), guard (Host allow-list, cross-site
checks, JSON 500s), headers (security headers), uploads (receiving and sniffing files), archive
(safe zip extraction), limits (the voxel budget, judged from headers), series (what a study holds,
the chosen series), studies (per-study private folders, idle timeout, the open-study cap, sweeping
folders of killed servers), private (no server paths or study ids in outputs), clinical (the form),
inference (one prediction, typed requests, the prediction queue), app (the Starlette routes),
command (the CLI). See docs/serve.md. `vcpred annotate` (docs/annotate.md): annotate_app (the page
without a model), annotate_session (the manifest's patients), annotate_manifest (rewriting one row's
ROI cells), annotate_command.
"""
