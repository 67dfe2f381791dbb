"""Export to deployment formats (extra ``onnx``: ``pip install 'csdn[onnx]'``).

Importing this package needs no optional dependency; the exporters import ``onnx``/``onnxscript``/``onnxruntime``
when called and name the extra if they are missing.
"""

from .cli import add_export_parser as add_export_parser
from .cli import run_export as run_export
from .onnx_export import ImageEncoderExport as ImageEncoderExport
from .onnx_export import export_onnx as export_onnx
from .onnx_export import onnx_metadata as onnx_metadata
from .onnx_export import verify_onnx as verify_onnx
