"""A tiny in-memory multi-person reader (CIHP label space) for tests of the person-crop protocol.

Samples follow the reader structure of ``humanparse.data.base``: ``image``, ``semantic``, ``person_ids``
and ``persons`` (``id``, ``mask``, ``keypoints`` = COCO-17 in image pixels, as the pseudo-pose files
of README "Datasets" give them), rendered by the synthetic scene generator.
"""

from __future__ import annotations

import numpy as np

from humanparse.data.base import Reader
from humanparse.data.meta import get_info
from humanparse.synthetic import labels_for, render_scene


class SyntheticCrowd(Reader):
    info = get_info("cihp")

    def __init__(
        self, root=None, split: str = "train", size: int = 4, height: int = 72, width: int = 96, **_
    ):
        super().__init__()
        self.root, self.split = root, split
        self.ids = [f"{i + 1:07d}" for i in range(size)]
        offset = {"train": 0, "val": 1000, "test": 2000}.get(split, 0)
        self._scenes = [
            render_scene(np.random.default_rng(offset + i), height, width, num_persons=2 + i % 2)
            for i in range(size)
        ]

    def load(self, index: int) -> dict:
        sc = self._scenes[index]
        semantic = labels_for(sc.tags, sc.parts, "cihp")
        persons = []
        for p in sc.persons:
            if p.box is None:
                continue
            kp = np.zeros((17, 3), np.float32)
            pts = p.skeleton.coco_keypoints()
            inside = (pts[:, 0] >= 0) & (pts[:, 0] < sc.width) & (pts[:, 1] >= 0) & (pts[:, 1] < sc.height)
            kp[inside, :2] = pts[inside]
            kp[inside, 2] = 1.0
            persons.append({"id": p.person_id, "mask": p.mask.copy(), "keypoints": kp})
        return {
            "image": sc.image.copy(),
            "semantic": semantic,
            "person_ids": sc.person_ids.copy(),
            "persons": persons,
            "meta": {
                "id": self.ids[index],
                "dataset": "cihp",
                "split": self.split,
                "index": index,
                "orig_size": sc.image.shape[:2],
            },
        }
