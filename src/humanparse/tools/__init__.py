"""Command-line tools around the data layer (kept out of :mod:`humanparse.data`, which only reads samples).

* :mod:`.check_data` - the dataset checker, ``python -m humanparse.tools.check_data data=<name> ...``;
* :mod:`.prepare_data` - official archives into the readers' layout, ``python -m humanparse.tools.prepare_data ...``;
* :mod:`.preview_data` - a few raw samples of any registered dataset, for the dataset viewer notebook.

The synthetic-data writer is ``python -m humanparse.synthetic <dataset> ROOT`` (:mod:`humanparse.synthetic`).
"""
