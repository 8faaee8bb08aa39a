"""`vcpred serve`: a local web viewer. Load a sagittal MRI, draw the ROI, type the clinical values,
see the collapse risk (through `vcpred.predict.predict_patient`, the code `vcpred predict` runs).

Modules: settings (limits), errors (HTTP-mapped user errors), uploads (receiving and sniffing
files), archive (safe zip extraction), series (what a study holds, the chosen series), studies
(per-study private folders, idle timeout), clinical (the form), inference (one prediction),
app (the Starlette routes), command (the CLI). See docs/serve.md.
"""
