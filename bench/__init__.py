"""Benchmarks: each prints its figures next to a baseline measured in the same run.

Run them all with ``make bench`` (``python -m bench``), or some with
``python -m bench nearest circles``. They start their own throwaway PostGIS cluster and
load the default Nanchang dataset into it; the cluster of ``make run`` is not touched.
"""
