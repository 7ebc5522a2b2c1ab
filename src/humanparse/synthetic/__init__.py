"""Procedural synthetic people, written in the real datasets' on-disk layouts.

Core (independent of any dataset or file format):

* :mod:`.skeleton` - random 2-D poses with the 16 LIP joints (:func:`sample_skeleton`).
* :mod:`.outfit` - garment choice and geometry (:func:`sample_outfit`).
* :mod:`.render` - rasterises one person: tag map, DensePose chart/U/V map, joints
  (:func:`render_person`).
* :mod:`.appearance` - class-dependent colours/textures and cluttered backgrounds.
* :mod:`.scene` - background plus one or more persons (:func:`render_scene`).
* :mod:`.vocab` - the :class:`Tag` vocabulary and its mapping onto the LIP, ATR, CIHP, MHP-v2 and
  PASCAL-Person-Part label sets (:func:`tag_lut`, :func:`labels_for`).

Writers, each in its dataset's default on-disk layout (shared helpers in :mod:`.writer`):
:mod:`.lip` (:func:`generate_lip`, :func:`make_lip_sample`), :mod:`.atr` (:func:`generate_atr`),
:mod:`.pascal` (:func:`generate_pascal_person_part`), :mod:`.cihp` (:func:`generate_cihp`) and
:mod:`.mhp` (:func:`generate_mhp_v2`). ``python -m humanparse.synthetic <dataset> ROOT`` runs any
registered writer.
"""

from humanparse.synthetic.atr import generate_atr
from humanparse.synthetic.cihp import generate_cihp
from humanparse.synthetic.lip import generate_lip, make_lip_sample
from humanparse.synthetic.mhp import generate_mhp_v2
from humanparse.synthetic.outfit import Outfit, sample_outfit
from humanparse.synthetic.pascal import generate_pascal_person_part
from humanparse.synthetic.render import PersonRender, draw_person, joint_visibility, render_person
from humanparse.synthetic.scene import Scene, ScenePerson, layout_persons, render_scene
from humanparse.synthetic.skeleton import FACINGS, Skeleton, place, sample_pose, sample_skeleton
from humanparse.synthetic.vocab import (
    NUM_TAGS,
    SKIN_TAGS,
    TAG_FLIP,
    TAG_FLIP_PAIRS,
    TAG_GROUP,
    TAG_TO_CLASS,
    Tag,
    chart_to_label_lut,
    flip_tags,
    labels_for,
    tag_lut,
)

__all__ = [
    "FACINGS",
    "NUM_TAGS",
    "SKIN_TAGS",
    "TAG_FLIP",
    "TAG_FLIP_PAIRS",
    "TAG_GROUP",
    "TAG_TO_CLASS",
    "Outfit",
    "PersonRender",
    "Scene",
    "ScenePerson",
    "Skeleton",
    "Tag",
    "chart_to_label_lut",
    "draw_person",
    "flip_tags",
    "generate_atr",
    "generate_cihp",
    "generate_lip",
    "generate_mhp_v2",
    "generate_pascal_person_part",
    "joint_visibility",
    "labels_for",
    "layout_persons",
    "make_lip_sample",
    "place",
    "render_person",
    "render_scene",
    "sample_outfit",
    "sample_pose",
    "sample_skeleton",
    "tag_lut",
]
