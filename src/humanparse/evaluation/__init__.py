"""File readers of the standalone evaluator (``python -m humanparse.evaluate_predictions``).

* :mod:`.groundtruth` - the official GT files per image id (CIHP ``Category_ids`` / ``Human_ids`` /
  ``Instance_ids`` (+ ``.txt``), MHP v2 ``parsing_annos``, PGN ``edges``), through
  :func:`humanparse.data.io.read_label` (through the faster :mod:`.fastio`) and the shared per-person derivation of
  :mod:`humanparse.data.instances`.
* :mod:`.predictions` - the prediction formats the official evaluators read: per-person PNGs with
  ``scores.txt``, the MHP v2 submission (``results.txt``, ``global_seg/``, ``global_tag/``), the
  CIHP_PGN part-instance format (``<id>.png`` + ``<id>.txt``) and PGN edge maps.
"""
