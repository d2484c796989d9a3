"""A store with a checkpoint whose file is real, for the beliefs views: the small seeded store
(tests/app_store.py, whose two checkpoints name files that do not exist) plus a third checkpoint
of run-a, a tiny SpanModel saved with trainer.checkpoints.save_checkpoint in the format
trainer.train's checkpoint_payload writes, evaluated on the same evaluation set by
trainer.evaluate.evaluate, so its stored predictions are its own."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lambdascope.store import Checkpoint, open_store, write_evaluation
from trainer.checkpoints import CHECKPOINT_FORMAT, save_checkpoint
from trainer.data import Vocab
from trainer.evaluate import evaluate
from trainer.model import ModelConfig, SpanModel
from trainer.predict import Predictor

from tests.app_store import Seeded, build_small_store

N_LAYER, N_HEAD = 2, 2


@dataclass
class ModelStore:
    seeded: Seeded
    ck: int  # the checkpoint with a real file
    path: Path


def tiny_model(seed: int = 7, sharpness: float = 40.0) -> tuple[SpanModel, Vocab]:
    """A small untrained model whose pointers are sharpened (its start and end heads scaled), so
    that it is as sure of itself as a trained one, if not as right."""
    vocab = Vocab()
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, open_id=vocab.open_id,
                      close_id=vocab.close_id, n_layer=N_LAYER, n_head=N_HEAD, d_model=32, d_ff=64)
    model = SpanModel(cfg).eval()
    with torch.no_grad():
        model.head.weight.mul_(sharpness)
        model.end_q.weight.mul_(sharpness / 4)
    return model, vocab


def build_model_store(url: str, folder: Path) -> ModelStore:
    seeded = build_small_store(url)
    model, vocab = tiny_model()
    path = (folder / "ckpt_0000300.pt").resolve()
    save_checkpoint(path, {
        "format": CHECKPOINT_FORMAT, "model_config": model.cfg.to_dict(), "train_config": {},
        "vocab": vocab.itos, "model": model.state_dict(), "optimizer": {}, "run_id": seeded.run_a,
        "run_name": "run-a", "step": 300, "tokens": 0, "padded_tokens": 0, "train_seconds": 0.0,
        "eval_seconds": 0.0, "data_position": [0, 0], "metrics": {}, "saved_at": time.time()})
    ev = evaluate(Predictor(model, vocab), seeded.traces, seeded.example_ids)
    engine, Session = open_store(url)
    with Session() as s, s.begin():
        es_id = s.get(Checkpoint, seeded.ck1).eval_set_id
        ck = write_evaluation(s, run_id=seeded.run_a, eval_set_id=es_id, step=300, path=str(path),
                              metrics=ev.metrics, predictions=ev.predictions, rollouts=ev.rollouts)
    engine.dispose()
    return ModelStore(seeded, ck, path)


def make_dashboard_client(url: str, **settings):
    """A TestClient of the dashboard as ``lambdascope serve`` builds it, with the trainer's
    checkpoint loader (``lambdascope.commands.dashboard.create_dashboard``)."""
    import warnings

    from app.settings import Settings
    from lambdascope.commands.dashboard import create_dashboard

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
        from fastapi.testclient import TestClient

        return TestClient(create_dashboard(Settings(db_url=url, warm_caches=False, **settings)),
                          base_url="http://testserver")
