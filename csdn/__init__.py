"""csdn: CLIP-Driven Semantic Discovery Network for visible-infrared person re-identification.

Subpackages, in dependency order (each imports only from those before it):
``clip`` -> ``data`` -> ``models`` -> ``losses`` -> ``engine`` -> ``evaluation`` -> ``cli``.
"""

__version__ = "0.1.0"
