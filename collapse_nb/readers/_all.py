"""Import every built-in reader so that it registers itself. One line per reader module."""
from . import text_log  # noqa: F401
from . import jsonl  # noqa: F401
from . import detectron2_json  # noqa: F401
from . import mmengine_json  # noqa: F401
from . import detr_log  # noqa: F401
from . import chainer_log  # noqa: F401
from . import keras_history  # noqa: F401
from . import hf_trainer_state  # noqa: F401
from . import csv_metrics, config_file  # noqa: F401
from . import tb_events  # noqa: F401
from . import capture_log  # noqa: F401
from . import torch_checkpoint, safetensors_file  # noqa: F401
from . import mlflow_store  # noqa: F401
from . import mlflow_sqlite  # noqa: F401
from . import wandb_run  # noqa: F401
