"""Tissue classes and their relative signal on T1- and T2-weighted fast spin echo (fat = 1).

The values follow the textbook appearance of a spine MRI: fat bright on both; CSF dark on T1 and
bright on T2; fatty marrow of an elderly patient bright-ish on T1 and intermediate on T2;
bone-marrow edema dark on T1 and bright on T2; a fluid cleft darker than marrow on T1 and brighter
than anything else on T2; cortex, ligaments and flowing blood dark on both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tissue:
    id: int
    name: str
    t1: float
    t2: float

    def signal(self, sequence: str) -> float:
        return self.t1 if sequence == "t1" else self.t2


AIR = Tissue(0, "air", 0.0, 0.0)
ABDOMEN = Tissue(1, "abdomen", 0.42, 0.42)
LUNG = Tissue(2, "lung", 0.04, 0.05)
MUSCLE = Tissue(3, "muscle", 0.36, 0.2)
FAT = Tissue(4, "fat", 1.0, 0.9)
SKIN = Tissue(5, "skin", 0.5, 0.35)
VESSEL = Tissue(6, "aorta", 0.05, 0.05)        # flow void
IVC = Tissue(7, "vena cava", 0.3, 0.5)
LIGAMENT = Tissue(8, "ligament", 0.1, 0.08)
INTERSPINOUS = Tissue(9, "interspinous", 0.45, 0.32)
CORTEX = Tissue(10, "cortex", 0.12, 0.1)
MARROW = Tissue(11, "marrow", 0.7, 0.5)
EDEMA = Tissue(12, "edema", 0.22, 0.9)
CLEFT = Tissue(13, "cleft", 0.08, 1.1)
ANNULUS = Tissue(14, "annulus", 0.3, 0.22)
NUCLEUS = Tissue(15, "nucleus", 0.38, 0.85)   # T2 scaled by disc hydration
CSF = Tissue(16, "csf", 0.12, 1.0)
CORD = Tissue(17, "cord", 0.42, 0.36)
NERVE = Tissue(18, "nerve", 0.4, 0.32)
FACET = Tissue(19, "facet joint", 0.15, 0.75)
BASIVERTEBRAL = Tissue(20, "basivertebral vein", 0.3, 0.8)
MEDIASTINUM = Tissue(21, "mediastinum", 0.35, 0.3)
LIVER = Tissue(22, "liver", 0.45, 0.2)
BOWEL_FLUID = Tissue(23, "bowel fluid", 0.25, 0.7)
GAS = Tissue(24, "bowel gas", 0.03, 0.03)
MESENTERY = Tissue(25, "mesenteric fat", 0.6, 0.5)

TISSUES = (AIR, ABDOMEN, LUNG, MUSCLE, FAT, SKIN, VESSEL, IVC, LIGAMENT, INTERSPINOUS, CORTEX,
           MARROW, EDEMA, CLEFT, ANNULUS, NUCLEUS, CSF, CORD, NERVE, FACET, BASIVERTEBRAL, MEDIASTINUM,
           LIVER, BOWEL_FLUID, GAS, MESENTERY)
