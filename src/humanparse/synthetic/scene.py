"""Whole synthetic images: a cluttered background with one or more rendered, painted persons.

Persons are composited in order: person ``k`` (1-based id, the drawing order) overwrites persons
``< k`` where they overlap, so later persons occlude earlier ones. All maps are full-image arrays;
nothing here knows about any dataset's labels or files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from humanparse.synthetic.appearance import (
    finish_image,
    paint_person,
    render_background,
    sample_appearance,
)
from humanparse.synthetic.render import PersonRender, joint_visibility, render_person
from humanparse.synthetic.skeleton import Skeleton, place, sample_pose, sample_skeleton


@dataclass(eq=False)
class ScenePerson:
    """One person of a scene, after occlusion by later persons.

    Attributes:
        person_id: 1..N, the drawing order (larger ids are in front).
        tags: ``(H, W)`` uint8 visible tag map of this person (0 elsewhere).
        mask: ``(H, W)`` bool visible pixels.
        joints: ``(16, 2)`` float64 (x, y) pixels, LIP order.
        in_image: ``(16,)`` bool, joint inside the image.
        visible: ``(16,)`` bool, joint inside the image and not hidden (by this or another person).
        box: tight ``(x0, y0, x1, y1)`` of the visible pixels, ``x1``/``y1`` exclusive; ``None`` if
            the person is fully hidden.
        render: the unoccluded (amodal) rendering, with the skeleton and outfit.
    """

    person_id: int
    tags: np.ndarray
    mask: np.ndarray
    joints: np.ndarray
    in_image: np.ndarray
    visible: np.ndarray
    box: tuple[int, int, int, int] | None
    render: PersonRender

    @property
    def skeleton(self) -> Skeleton:
        return self.render.skeleton

    @property
    def facing(self) -> str:
        return self.render.skeleton.facing


@dataclass(eq=False)
class Scene:
    """A rendered image with its dense annotations.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        tags: ``(H, W)`` uint8 :class:`~humanparse.synthetic.vocab.Tag` map (0 = background).
        person_ids: ``(H, W)`` uint8, 0 = background, else the visible person's id.
        parts, u, v: DensePose fine chart (uint8 0..24) and chart coordinates (float32) of the
            visible surface; 0 off the body.
        persons: per-person data, index ``k - 1`` for person id ``k``.
    """

    image: np.ndarray
    tags: np.ndarray
    person_ids: np.ndarray
    parts: np.ndarray
    u: np.ndarray
    v: np.ndarray
    persons: list[ScenePerson]

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _covered(boxes: list[tuple[float, float, float, float]]) -> float:
    """Largest fraction of any box's area overlapped by the boxes drawn after it (sum of overlaps)."""
    worst = 0.0
    for i, (a0, b0, a1, b1) in enumerate(boxes):
        area = max((a1 - a0) * (b1 - b0), 1e-9)
        hidden = 0.0
        for c0, d0, c1, d1 in boxes[i + 1 :]:
            hidden += max(0.0, min(a1, c1) - max(a0, c0)) * max(0.0, min(b1, d1) - max(b0, d0))
        worst = max(worst, hidden / area)
    return worst


def layout_persons(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_persons: int,
    height_frac: tuple[float, float] = (0.4, 0.85),
    max_covered: float = 0.7,
    tries: int = 10,
    facing: str | None = None,
) -> list[Skeleton]:
    """Skeletons for a multi-person scene, in drawing order (smaller, i.e. farther, persons first).

    Persons stand side by side with random overlap; a layout in which some person's box would be
    more than ``max_covered`` covered by later persons is re-drawn (up to ``tries`` times).
    """
    best: list[Skeleton] = []
    best_cov = np.inf
    for _ in range(tries):
        fracs = np.sort(rng.uniform(*height_frac, num_persons))
        slots = (np.arange(num_persons) + rng.uniform(0.15, 0.85, num_persons)) / num_persons * width
        slots = slots[rng.permutation(num_persons)]
        skels = []
        for frac, cx in zip(fracs, slots):
            top = float(rng.uniform(0.02, max(0.02, 0.98 - frac))) * height
            skels.append(place(sample_pose(rng, facing), float(frac) * height, float(cx), top))
        cov = _covered([s.extent() for s in skels])
        if cov < best_cov:
            best, best_cov = skels, cov
        if cov <= max_covered:
            break
    return best


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_persons: int = 1,
    *,
    crop_prob: float = 0.1,
    height_frac: tuple[float, float] | None = None,
    facing: str | None = None,
) -> Scene:
    """Render a background and ``num_persons`` persons.

    One person: roughly centred, body height ``height_frac`` (default 0.5-0.9) of the image height;
    with probability ``crop_prob`` larger, so the legs leave the image. Several persons: side by side
    (:func:`layout_persons`, default height fraction 0.4-0.85), overlapping, later ones in front.
    ``facing`` forces the facing of every person (default: random, 70 % front).
    """
    if num_persons < 1:
        raise ValueError(f"num_persons must be >= 1, got {num_persons}")
    image = render_background(rng, height, width)
    if num_persons == 1:
        skels = [
            sample_skeleton(
                rng, height, width, facing=facing, crop_prob=crop_prob, height_frac=height_frac or (0.5, 0.9)
            )
        ]
    else:
        skels = layout_persons(rng, height, width, num_persons, height_frac or (0.4, 0.85), facing=facing)
    tags = np.zeros((height, width), dtype=np.uint8)
    pids = np.zeros((height, width), dtype=np.uint8)
    parts = np.zeros((height, width), dtype=np.uint8)
    u = np.zeros((height, width), dtype=np.float32)
    v = np.zeros((height, width), dtype=np.float32)
    renders: list[PersonRender] = []
    for k, sk in enumerate(skels, start=1):
        r = render_person(rng, height, width, skeleton=sk)
        m = r.mask
        tags[m], pids[m], parts[m], u[m], v[m] = r.tags[m], k, r.parts[m], r.u[m], r.v[m]
        paint_person(rng, image, r.tags, r.shade, sample_appearance(rng, sk.height))
        renders.append(r)
    persons = []
    for k, r in enumerate(renders, start=1):
        vis = pids == k
        persons.append(
            ScenePerson(
                person_id=k,
                tags=np.where(vis, r.tags, 0).astype(np.uint8),
                mask=vis,
                joints=r.joints,
                in_image=r.in_image,
                visible=joint_visibility(r.joints, parts, vis),
                box=_box(vis),
                render=r,
            )
        )
    return Scene(
        image=finish_image(rng, image), tags=tags, person_ids=pids, parts=parts, u=u, v=v, persons=persons
    )
