"""CSDN model components: prompt learners, text encoder, semantic integrator, heads, two-stream image encoder."""

from .heads import BNNeck as BNNeck
from .heads import BNNeckOutput as BNNeckOutput
from .heads import GeM as GeM
from .heads import HSEHead as HSEHead
from .integrator import INTEGRATORS as INTEGRATORS
from .integrator import AddIntegrator as AddIntegrator
from .integrator import SemanticIntegrator as SemanticIntegrator
from .integrator import VisibleOnlyIntegrator as VisibleOnlyIntegrator
from .integrator import build_integrator as build_integrator
