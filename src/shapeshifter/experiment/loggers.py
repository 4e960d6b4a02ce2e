"""Loggers for a run (``logger=`` group: wandb | csv | none): W&B (offline unless a key is configured) and a
local CSV log, each switched by its ``enabled`` key and built by Hydra from its ``_target_`` (`csv_logger`,
`wandb_logger`) with the run's folder, name, group and config.

An online W&B run that cannot reach the service within ``logger.wandb.init_timeout`` seconds falls back to
offline logging with a warning (sync it later with ``wandb sync``), instead of stalling the job or failing it.

What W&B shows is grouped for its dashboard: metric names by stage (`wandb_metric_name`: ``valid_bleu`` is
``valid/bleu`` there, while the CSV log and the record keep the names tables read) and tags naming the table,
method, scale and seed of the run (`run_tags`), so a paper table is a filter on tags.

The server is asked first with one plain HTTP request (`unreachable`): wandb's own start against a server that
refuses connections or never answers outlasts ``init_timeout`` (its resume check; ~24 s with ``init_timeout=3``
under load), and the failed online run then also delays the process's exit (its service is torn down at exit:
15.0 s after a never-answering server, 3.0 s with this check; measured on a loaded 2-core machine). Without an answer
the run starts offline at once; the warning says what is wrong (no answer, or an answer that refused the run: a
key or project problem) instead of blaming a timeout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("shapeshifter")

WANDB_MODES = ("online", "offline", "disabled")
WANDB_KEYS = {"_target_", "enabled", "mode", "project", "tags", "init_timeout"}
LOGGER_KEYS = {"wandb": WANDB_KEYS, "csv": {"_target_", "enabled"}}
# the factory of a logger whose node names none (no node, or a config saved before ``_target_``); CSV first
LOGGERS = {"csv": "shapeshifter.experiment.loggers.csv_logger", "wandb": "shapeshifter.experiment.loggers.wandb_logger"}
DEFAULT_INIT_TIMEOUT = 30.0  # seconds; wandb's own default (90 s) would stall every job of a sweep that long
DEFAULT_BASE_URL = "https://api.wandb.ai"


def unreachable(base_url: str, timeout: float) -> str | None:
    """Why the W&B server at ``base_url`` gives no answer (one HTTP request within ``timeout`` seconds, through
    the environment's proxy like any urllib request), None when it answers anything, an HTTP error included. A
    TLS failure is left for wandb's own client to judge (its certificates may differ)."""
    import ssl
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(base_url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, ssl.SSLError):
            return None
        return f"{type(reason).__name__}: {getattr(reason, 'strerror', None) or reason}"
    return None


def wandb_mode(configured: str | None = None) -> str:
    """The W&B mode a run uses: the configured one, else online only when an API key is set."""
    return configured or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


def validate_loggers(cfg: Any) -> None:
    """Check the ``logger`` node before any work: a misspelt logger or key would otherwise be ignored."""
    unknown = sorted(set(cfg or {}) - set(LOGGER_KEYS))
    if unknown:
        raise ValueError(f"logger.{unknown[0]} is not a logger; known: {sorted(LOGGER_KEYS)} (logger=wandb|csv|none)")
    for name, known in LOGGER_KEYS.items():
        unknown = set((cfg or {}).get(name) or {}) - known
        if unknown:
            raise ValueError(f"logger.{name}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    validate_wandb(cfg)


def enabled(cfg: Any, name: str) -> bool:
    """Whether logger ``name`` runs: not ``enabled: false``; without a node, CSV does (configs saved before the
    ``logger`` group had no switch for it) and W&B does not."""
    node = cfg.get(name) if cfg is not None else None
    if node is None:
        return name == "csv"
    return bool(node.get("enabled", True))


def validate_wandb(cfg: Any) -> None:
    """Check ``logger.wandb`` before any work: wandb itself would only reject a bad mode once training starts."""
    wb = cfg.get("wandb") if cfg is not None else None
    if wb is None:
        return
    mode = wb.get("mode")
    if mode is not None and mode not in WANDB_MODES:
        raise ValueError(f"logger.wandb.mode must be one of {list(WANDB_MODES)} or null (online when WANDB_API_KEY "
                         f"is set, else offline), got {mode!r}")
    timeout = wb.get("init_timeout", DEFAULT_INIT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ValueError(f"logger.wandb.init_timeout must be a positive number of seconds, got {timeout!r}")


def make_loggers(cfg: Any, out_dir: Path, run_name: str, group: str | None, config: dict) -> list:
    """Lightning loggers, each built by Hydra from its node: CSV unless ``logger.csv.enabled`` is false; W&B when
    ``logger.wandb.enabled`` (default offline mode). Empty for ``logger=none``."""
    lightning_output_once()  # before the CSV writer of a resumed run warns
    loggers: list = []
    for name, target in LOGGERS.items():
        if not enabled(cfg, name):
            continue
        node = (cfg or {}).get(name) or {}
        settings = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        settings = {"_target_": target, **{k: v for k, v in settings.items() if k != "enabled"}}
        make = instantiate(settings, _partial_=True, _convert_="all")
        loggers.append(make(out_dir=out_dir, run_name=run_name, group=group, config=config))
    return loggers


def csv_logger(out_dir: Path, run_name: str, group: str | None, config: dict) -> Any:
    """The CSV log in ``<run folder>/csv/metrics.csv``, keeping the rows of an interrupted attempt."""
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(save_dir=str(out_dir), name="csv", version="")
    keep_previous_csv(logger)
    return logger


def wandb_logger(out_dir: Path, run_name: str, group: str | None, config: dict, mode: str | None = None,
                 project: str = "shapeshifter", tags: list[str] | None = None,
                 init_timeout: float = DEFAULT_INIT_TIMEOUT) -> Any:
    """A `WandbLogger` whose run is started here: an online run that cannot reach the service within
    ``init_timeout`` is started offline instead, with a warning (the job goes on, its logs can be synced later)."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    mode = wandb_mode(mode)
    timeout = float(init_timeout)

    def make(run_mode: str) -> Any:
        # mode goes to wandb.init itself: an environment variable left by an earlier job must not decide it
        return stage_wandb_logger()(project=project, name=run_name, group=group,
                                    save_dir=str(out_dir), offline=(run_mode == "offline"), config=config,
                                    tags=run_tags(config, list(tags or [])), mode=run_mode,
                                    settings=wandb.Settings(init_timeout=timeout))

    offline = f"logging offline to {out_dir / 'wandb'} instead (upload later with `wandb sync`)"
    if mode == "online":
        base_url = os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
        if why := unreachable(base_url, min(timeout, 10.0)):
            log.warning("W&B: cannot reach the server %s (%s) within logger.wandb.init_timeout=%ss; %s", base_url,
                        why, timeout, offline)
            mode = "offline"
    logger = make(mode)
    if mode != "online":
        return logger
    try:
        logger.experiment  # noqa: B018 - starts the run now, so that a failure can fall back
    except Exception as err:  # noqa: BLE001 - wandb raises CommError, UsageError, AuthenticationError, ...
        reason = str(err).splitlines()[0] if str(err) else ""
        cause = ("did not answer in time" if "deadline" in reason or "timed out" in reason.lower() else
                 "refused the run (check WANDB_API_KEY, the entity and the project)")
        log.warning("W&B: the server %s %s (%s: %s; logger.wandb.init_timeout=%ss); %s", base_url, cause,
                    type(err).__name__, reason, timeout, offline)
        logger = make("offline")
        logger.experiment  # noqa: B018
    return logger


# (prefixes of a metric name, its W&B stage): translation logs ``valid_bleu``, GLUE ``val/accuracy``.
STAGE_PREFIXES = ((("train_", "train/"), "train"), (("valid_", "valid/", "val_", "val/"), "valid"),
                  (("test_", "test/"), "test"))
UNSTAGED = {"epoch", "trainer/global_step"}  # W&B's own step axes


def wandb_metric_name(name: str) -> str:
    """The name a metric has in W&B: ``<stage>/<rest>`` for train, valid and test metrics (the learning rate,
    ``lr`` or LearningRateMonitor's ``lr-Adam``, under ``train/``; ``params_total`` as ``model/params_total``),
    so that the dashboard groups its panels by stage; any other name as it is."""
    if name in UNSTAGED:
        return name
    if name == "lr" or name.startswith("lr-"):
        return f"train/{name}"
    if name.startswith("params_"):
        return f"model/{name}"
    for prefixes, stage in STAGE_PREFIXES:
        for prefix in prefixes:
            if name.startswith(prefix):
                return f"{stage}/{name[len(prefix):]}"
    return name


def run_tags(config: Mapping[str, Any], extra: list[str] | None = None) -> list[str]:
    """W&B tags of a run: ``table:<table>`` (``run.group`` without the scale's suffix), ``method:<policy name>``,
    ``scale:<scale>`` (``default`` without ``+scale``) and ``seed:<seed>``, then ``logger.wandb.tags``."""
    run, scale = config.get("run") or {}, config.get("scale") or {}
    group = str(run.get("group") or "default")
    suffix = str(scale.get("suffix") or "")
    tags = [f"table:{group.removesuffix(suffix) if suffix else group}",
            f"method:{(config.get('shapeshift') or {}).get('name', 'dense')}",
            f"scale:{scale.get('name', 'default')}", f"seed:{config.get('seed')}"]
    return [*tags, *(t for t in (extra or []) if t not in tags)]


@cache
def stage_wandb_logger() -> type:
    """`WandbLogger` that renames metrics by `wandb_metric_name` (built on first use: Lightning loads lazily)."""
    from lightning.pytorch.loggers import WandbLogger

    class StageWandbLogger(WandbLogger):
        def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
            super().log_metrics({wandb_metric_name(k): v for k, v in metrics.items()}, step)

    return StageWandbLogger


def lightning_output_once() -> None:
    """Each Lightning log line once, and no warning about a checkpoint folder the run itself prepared.

    ``import lightning`` gives the ``lightning`` logger a console handler of its own and lets it propagate too: under
    Hydra, whose root handler writes every line to the console and the job log, each line came out twice. With a
    root handler the root's is kept (the line also reaches the job log). Lightning also warns that a checkpoint
    folder "exists and is not empty" whenever it holds a file; ours always holds the ``CONFIG_HASH`` mark (and, when
    resuming, the run's own ``last.ckpt``): `experiment.records.claim_checkpoint_dir` has already moved a folder of
    another config aside, so the warning says nothing. Nor does the CSV logger's on a resumed run ("previous log
    files ... will be deleted"): `keep_previous_csv` carries their rows over."""
    import warnings

    lightning_logger = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        for handler in [h for h in lightning_logger.handlers if type(h) is logging.StreamHandler]:
            lightning_logger.removeHandler(handler)
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")


def keep_previous_csv(logger: Any) -> int:
    """Carry the rows of an interrupted attempt's ``metrics.csv`` over to the resumed one; returns how many.

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts, so a resumed run would lose the
    epochs logged before the interruption. The rows are read first and written back under the same header;
    later saves append to them (rows of a partly replayed epoch appear twice, with their step).
    """
    import csv

    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return 0
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    writer = logger.experiment  # creating the writer removes the old file
    with path.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = list(header)
    return len(rows)


def finish_wandb() -> None:
    """Close the W&B run of this job (one W&B run per Hydra job, also in multirun)."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
