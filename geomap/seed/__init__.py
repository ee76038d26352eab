"""Deterministic demo datasets, generated in pure Python (no database).

``geomap.seed.nanchang`` builds the default Nanchang dataset: the real city and district
outlines, township names and codes, red culture sites and metro stations, completed with
clearly labelled synthetic townships, communities, grids, stations, teams and a road network.
"""
