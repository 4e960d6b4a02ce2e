"""Registry of the nine GLUE tasks plus user-defined "generic" tasks read from the user's own files.

A :class:`TaskSpec` is the single source of truth that the data module, the metrics and the Lightning
module all consult, so adding a task means adding one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "GLUE_TASKS",
    "METRIC_NAMES",
    "TaskSpec",
    "generic_task",
    "get_task",
    "split_tag",
]

#: Metric names understood by :func:`shapeshifter.glue.metrics.compute_metric`.
METRIC_NAMES: tuple[str, ...] = ("mcc", "accuracy", "f1", "macro_f1", "pearson", "spearman")


@dataclass(frozen=True)
class TaskSpec:
    """Everything needed to load, encode, train and score one sentence(-pair) task.

    ``label_names`` maps class index -> name; string labels in data files are mapped back through it.
    For generic tasks ``label_names`` is ``None`` until the label vocabulary has been built from the
    training split (see :func:`shapeshifter.glue.data.load_generic_splits`).
    """

    name: str
    text_fields: tuple[str, ...]
    label_field: str = "label"
    num_labels: int = 2
    is_regression: bool = False
    metrics: tuple[str, ...] = ("accuracy",)
    label_names: tuple[str, ...] | None = None
    train_split: str = "train"
    validation_splits: tuple[str, ...] = ("validation",)
    test_splits: tuple[str, ...] = ("test",)
    hf_config: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.text_fields) not in (1, 2):
            raise ValueError(f"task {self.name!r}: need one or two text fields, got {self.text_fields!r}")
        if len(set(self.text_fields)) != len(self.text_fields):
            raise ValueError(f"task {self.name!r}: text fields must differ, got {self.text_fields!r}")
        if self.label_field in self.text_fields:
            raise ValueError(f"task {self.name!r}: label field {self.label_field!r} is also a text field")
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"task {self.name!r}: unknown metric(s) {unknown}; known: {METRIC_NAMES}")
        if self.is_regression:
            if self.num_labels != 1:
                raise ValueError(f"task {self.name!r}: regression tasks have num_labels=1")
        elif self.num_labels < 2:
            raise ValueError(f"task {self.name!r}: classification needs >= 2 labels, got {self.num_labels}")
        named = self.label_names is not None and not self.is_regression
        if named and len(self.label_names) != self.num_labels:
            raise ValueError(
                f"task {self.name!r}: {len(self.label_names)} label names for {self.num_labels} labels"
            )

    @property
    def is_pair(self) -> bool:
        """True for sentence-pair tasks (encoded as ``[CLS] a [SEP] b [SEP]``)."""
        return len(self.text_fields) == 2


def split_tag(spec: TaskSpec, split: str) -> str | None:
    """Suffix used in metric keys when a task has several evaluation splits (MNLI: matched/mismatched).

    Returns ``None`` for tasks with a single validation split so that their keys stay unsuffixed.
    """
    evaluation = spec.validation_splits if split in spec.validation_splits else spec.test_splits
    if len(evaluation) <= 1:
        return None
    for prefix in ("validation_", "test_", "dev_"):
        if split.startswith(prefix):
            return split[len(prefix) :]
    return split


GLUE_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("cola", ("sentence",), metrics=("mcc",), label_names=("unacceptable", "acceptable")),
        TaskSpec("sst2", ("sentence",), label_names=("negative", "positive")),
        TaskSpec(
            "mrpc",
            ("sentence1", "sentence2"),
            metrics=("accuracy", "f1"),
            label_names=("not_equivalent", "equivalent"),
        ),
        TaskSpec(
            "stsb",
            ("sentence1", "sentence2"),
            num_labels=1,
            is_regression=True,
            metrics=("pearson", "spearman"),
        ),
        TaskSpec(
            "qqp",
            ("question1", "question2"),
            metrics=("accuracy", "f1"),
            label_names=("not_duplicate", "duplicate"),
        ),
        TaskSpec(
            "mnli",
            ("premise", "hypothesis"),
            num_labels=3,
            label_names=("entailment", "neutral", "contradiction"),
            validation_splits=("validation_matched", "validation_mismatched"),
            test_splits=("test_matched", "test_mismatched"),
        ),
        TaskSpec("qnli", ("question", "sentence"), label_names=("entailment", "not_entailment")),
        TaskSpec("rte", ("sentence1", "sentence2"), label_names=("entailment", "not_entailment")),
        TaskSpec("wnli", ("sentence1", "sentence2"), label_names=("not_entailment", "entailment")),
    )
}

_ALIASES: dict[str, str] = {
    "sst-2": "sst2",
    "sst_2": "sst2",
    "sts-b": "stsb",
    "sts_b": "stsb",
    "mnli-m": "mnli",
    "mnli_matched": "mnli",
}


def get_task(name: str) -> TaskSpec:
    """Look up a GLUE task by (case-insensitive) name, e.g. ``"SST-2"`` or ``"mnli"``."""
    if not isinstance(name, str):
        raise ValueError(f"task name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {name!r}; known tasks: {sorted(GLUE_TASKS)}")
    return GLUE_TASKS[key]


def generic_task(
    text_fields: str | list[str] | tuple[str, ...],
    label_field: str = "label",
    *,
    name: str = "custom",
    regression: bool = False,
    label_names: list[str] | tuple[str, ...] | None = None,
    metrics: list[str] | tuple[str, ...] | None = None,
) -> TaskSpec:
    """Spec for a task read from the user's own TSV/CSV/JSONL files.

    For classification, ``label_names`` may be left ``None``: it is then built from the training split
    when the files are loaded, and ``num_labels`` is filled in at that point.
    """
    fields = (text_fields,) if isinstance(text_fields, str) else tuple(text_fields)
    if regression:
        return TaskSpec(
            name,
            fields,
            label_field=label_field,
            num_labels=1,
            is_regression=True,
            metrics=tuple(metrics or ("pearson", "spearman")),
        )
    names = tuple(str(x) for x in label_names) if label_names is not None else None
    return TaskSpec(
        name,
        fields,
        label_field=label_field,
        num_labels=len(names) if names else 2,
        metrics=tuple(metrics or ("accuracy", "macro_f1")),
        label_names=names,
        extra={"labels_from_train": names is None},
    )
