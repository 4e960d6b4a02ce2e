"""Every table in one registry: what runs fill it and how it is built from their records.

A table is one `TableSpec`. Its ``id`` is used everywhere: ``make reproduce-table-<id>``, the records folder
``<records>/<id>`` (``<id>-smoke`` at smoke scale, ``conf/scale/``), the files ``results/tables/<id>.*``. The
short names the Makefile has always taken (``2``, ``glue``, ...) are kept as aliases. `pipelines/reproduce.py`,
`make smoke`, the results notebook and ``make tables`` all read this registry, so adding a table is one
experiment file (its grid) plus one entry here::

    TableSpec("table3", translation_builder("table3", "Table 3: my sweep"), ("table3/iwslt14",), aliases=("3",))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from shapeshifter.experiment.records import load_records
from shapeshifter.paths import repo_root
from shapeshifter.reports.distill import build_distill_table
from shapeshifter.reports.frame import Column
from shapeshifter.reports.paper import (
    TRANSLATION_TABLES,
    TranslationTable,
    build_glue_table,
    build_table1,
    build_translation_table,
    finished_records,
)
from shapeshifter.reports.quality import (
    build_quality_glue_table,
    build_quality_snli_table,
    build_quality_table,
    build_why_table,
    build_width_table,
)
from shapeshifter.reports.translation import TRANSLATION_COLUMNS

CONF = repo_root() / "conf"
SCALES = ("full", "smoke")

Builder = Callable[[Path, Path], str]  # (records folder, output folder) -> the table as Markdown


@dataclass(frozen=True)
class TableSpec:
    """One table: its id, how it is built from records, and the runs that fill it."""

    id: str                                  # records group, output file stem, make target
    build: Builder
    experiments: tuple[str, ...] = ()        # experiment files whose grids fill it (none: a benchmark script)
    aliases: tuple[str, ...] = ()            # other names accepted by make / reproduce.py
    smoke_scale: str = "smoke"               # conf/scale file used for SCALE=smoke
    full_scale: str | None = "full"          # ... for SCALE=full (cpu: a study sized for CPUs; None: none)
    with_dense: bool = True                  # add each experiment's dense baseline (False: a grid file lists it)
    jobs: tuple[tuple[str, ...], ...] = ()   # explicit jobs (overrides on the one experiment) instead of its grid
    bench_args: tuple[str, ...] = ()         # a benchmark table's own options of pipelines/bench_model.py
    smoke_jobs: tuple[tuple[str, ...], ...] = ()  # SCALE=smoke runs these of the jobs only (default: all)
    sources: tuple[str, ...] = ()            # tables whose run folders its jobs read (a teacher): rebuilt if absent

    def scale_overrides(self, scale: str) -> list[str]:
        name = self.smoke_scale if scale == "smoke" else self.full_scale
        return [f"+scale={name}"] if name else []

    def scale_of(self, base: list[str]) -> str:
        """The scale (smoke or full) whose overrides ``base`` holds."""
        return "smoke" if f"+scale={self.smoke_scale}" in base else "full"

    def all_jobs(self, base: list[str]) -> list[list[str]]:
        """Override lists of every job, in the order `pipelines/reproduce.py` runs them: the explicit jobs, or
        each experiment's dense baseline and grid as Hydra's sweeper expands it (``base`` in every job)."""
        # Hydra's compose: only when a grid is run, not for tables (tables.py, the notebook)
        from shapeshifter.experiment.sweep import grid_jobs

        if self.jobs:
            smoke = self.smoke_jobs and self.scale_of(base) == "smoke"
            return [[f"experiment={self.experiments[0]}", *base, *job] for job in (self.smoke_jobs if smoke else
                                                                                   self.jobs)]
        return [job for experiment in self.experiments for job in grid_jobs(CONF, experiment, base, self.with_dense)]


def translation_builder(table_id: str, title: str | None = None, columns: tuple[Column, ...] | None = None) -> Builder:
    """A Table-2-style builder (quality vs size of translation runs): one of `TRANSLATION_TABLES`, or a new
    one with this title and columns (default: Table 2's)."""
    spec = TRANSLATION_TABLES.get(table_id) or TranslationTable(table_id, title or table_id,
                                                                 tuple(columns or TRANSLATION_COLUMNS))
    return partial(build_translation_table, spec)


def records_builder(build: Callable, kind: str, also: tuple[str, ...] = (),
                    benchmarks: tuple[str, ...] = ()) -> Builder:
    """A builder over the finished records of one kind (``build(records, out_dir)``), and with ``also`` those of
    these tables too (read only: their records folders at the same scale, beside its own), and with
    ``benchmarks`` the records of these benchmark kinds (folder named as the kind, any scale; none is fine)."""
    def builder(records_dir: Path, out_dir: Path) -> str:
        suffix = scale_suffix(records_dir.name)
        folders = [records_dir, *(records_dir.parent / f"{other}{suffix}" for other in also)]
        records = [rec for folder in folders for rec in finished_records(folder, kind)]
        for bench in benchmarks:
            records += [r for r in load_records(records_dir.parent / bench) if r.get("kind") == bench]
        return build(records, out_dir)
    return builder


# The investigation of why quality drops: one change at a time against o2-r8-emb29 (conf/experiment/quality/why.yaml).
WHY_JOBS = (
    ("shapeshift=kron",),
    *((f"optim.factor_lr_scale={s}", "shapeshift=kron") for s in ("0.3", "3.0", "10.0")),
    *((f"optim.factor_lr_scale={s}", "shapeshift=study/lowrank_r8_emb10") for s in ("3.0", "1.0")),
    ("optim.factor_lr_scale=3.0", "shapeshift=kron", "shapeshift.order=3", "shapeshift.rank=16",
     "shapeshift.per_type.embedding.rank=235"),
    ("optim.factor_lr_scale=3.0", "shapeshift=study/o2_r8_emb29_proj",
     "shapeshift.init_from=${run.outputs}/quality${oc.select:scale.suffix,''}/${data.name}-d128-dense-s${seed}"),
    ("optim.factor_lr_scale=3.0", "shapeshift=kron", "shapeshift.rank=4", "shapeshift.per_type.embedding.rank=42"),
    ("optim.factor_lr_scale=3.0", "shapeshift=kron", "shapeshift.rank=12", "shapeshift.per_type.embedding.rank=16"),
    ("optim.factor_lr_scale=3.0", "shapeshift=kron", "arch.overrides.dropout=0.0",
     "run.name=${data.name}-d128-${shapeshift.name}-flr${optim.factor_lr_scale}-drop0-s${seed}"),
    ("optim.factor_lr_scale=3.0", "shapeshift=study/phm8_emb16"),
    *(("optim.factor_lr_scale=3.0", "shapeshift=kron", f"+shapeshift.init_gain={gain}",
       f"run.name=${{data.name}}-d128-${{shapeshift.name}}-flr${{optim.factor_lr_scale}}-gain{gain}-s${{seed}}")
      for gain in ("0.5", "0.25", "2.0")),
    ("optim.factor_lr_scale=3.0", "shapeshift=kron", "optim.warmup_updates=600",
     "run.name=${data.name}-d128-${shapeshift.name}-flr${optim.factor_lr_scale}-warm600-s${seed}"),
    # the spread between seeds of the base at 3x and of the init's half std
    *(("optim.factor_lr_scale=3.0", "shapeshift=kron", f"seed={seed}") for seed in (2, 3)),
    ("optim.factor_lr_scale=3.0", "shapeshift=kron", "+shapeshift.init_gain=0.5", "seed=2",
     "run.name=${data.name}-d128-${shapeshift.name}-flr${optim.factor_lr_scale}-gain0.5-s${seed}"),
    # do the levers that helped alone add up? dropout 0 on top of projection, and of more rank for the embeddings
    ("optim.factor_lr_scale=3.0", "shapeshift=study/o2_r8_emb29_proj",
     "shapeshift.init_from=${run.outputs}/quality${oc.select:scale.suffix,''}/${data.name}-d128-dense-s${seed}",
     "arch.overrides.dropout=0.0",
     "run.name=${data.name}-d128-${shapeshift.name}-flr${optim.factor_lr_scale}-drop0-s${seed}"),
    ("optim.factor_lr_scale=3.0", "shapeshift=kron", "shapeshift.rank=4", "shapeshift.per_type.embedding.rank=42",
     "arch.overrides.dropout=0.0",
     "run.name=${data.name}-d128-${shapeshift.name}-flr${optim.factor_lr_scale}-drop0-s${seed}"),
)

# Distillation screening (conf/experiment/quality/distill.yaml): each kind alone on o2-r8-emb29 from scratch (the
# two that need no decoding stage first), then projected, then a second (alpha, T). Smoke: one run per kind.
_DISTILLED = "run.name=${data.name}-d128-${shapeshift.name}-flr${optim.factor_lr_scale}-distilled-"
_TEACHER_S1 = "distill.teacher=${run.outputs}/quality${oc.select:scale.suffix,''}/${data.name}-d128-dense-s1"
DISTILL_JOBS = (
    ("shapeshift=kron", "distill=word", _DISTILLED + "word-a${distill.alpha}-T${distill.temperature}-s${seed}"),
    ("shapeshift=kron", "distill=hidden", _DISTILLED + "hidden-s${seed}"),
    ("shapeshift=kron", "distill=sequence", _DISTILLED + "seq-s${seed}"),
    ("shapeshift=study/o2_r8_emb29_proj",
     "shapeshift.init_from=${run.outputs}/quality${oc.select:scale.suffix,''}/${data.name}-d128-dense-s${seed}",
     "distill=word", _DISTILLED + "word-a${distill.alpha}-T${distill.temperature}-s${seed}"),
    ("shapeshift=kron", "distill=word", "distill.alpha=0.9", "distill.temperature=1.0",
     _DISTILLED + "word-a${distill.alpha}-T${distill.temperature}-s${seed}"),
    # the candidates' further seeds, from the seed-1 teacher (the student's seed alone varies)
    ("shapeshift=kron", "distill=sequence", "seed=2", _TEACHER_S1, _DISTILLED + "seq-t1-s${seed}"),
    ("shapeshift=kron", "distill=word", "distill.alpha=0.9", "distill.temperature=1.0", "seed=2", _TEACHER_S1,
     _DISTILLED + "word-a${distill.alpha}-T${distill.temperature}-t1-s${seed}"),
    ("shapeshift=kron", "distill=sequence", "seed=3", _TEACHER_S1, _DISTILLED + "seq-t1-s${seed}"),
    ("shapeshift=kron", "distill=word", "distill.alpha=0.9", "distill.temperature=1.0", "seed=3", _TEACHER_S1,
     _DISTILLED + "word-a${distill.alpha}-T${distill.temperature}-t1-s${seed}"),
    # the two candidates together, and sequence-level beside the references
    ("shapeshift=kron", "distill=sequence", "distill.kinds=[sequence,word]", "distill.alpha=0.9",
     "distill.temperature=1.0", _DISTILLED + "seq-word-a${distill.alpha}-T${distill.temperature}-s${seed}"),
    ("shapeshift=kron", "distill=sequence", "distill.with_references=true", _DISTILLED + "seq-refs-s${seed}"),
    # the best two rows' further seeds, from the seed-1 teacher
    *(("shapeshift=kron", "distill=sequence", "distill.with_references=true", f"seed={seed}", _TEACHER_S1,
       _DISTILLED + "seq-refs-t1-s${seed}") for seed in (2, 3)),
    *(("shapeshift=kron", "distill=sequence", "distill.kinds=[sequence,word]", "distill.alpha=0.9",
       "distill.temperature=1.0", f"seed={seed}", _TEACHER_S1,
       _DISTILLED + "seq-word-a${distill.alpha}-T${distill.temperature}-t1-s${seed}") for seed in (2, 3)),
    # the attention distributions (head-averaged) of every attention module; its further seeds, and on top of
    # the teacher's translations beside the references
    ("shapeshift=kron", "distill=attention", _DISTILLED + "attention-s${seed}"),
    *(("shapeshift=kron", "distill=attention", f"seed={seed}", _TEACHER_S1, _DISTILLED + "attention-t1-s${seed}")
      for seed in (2, 3)),
    ("shapeshift=kron", "distill=attention", "distill.kinds=[sequence,attention]", "distill.with_references=true",
     _DISTILLED + "seq-refs-attention-s${seed}"),
    *(("shapeshift=kron", "distill=attention", "distill.kinds=[sequence,attention]", "distill.with_references=true",
       f"seed={seed}", _TEACHER_S1, _DISTILLED + "seq-refs-attention-t1-s${seed}") for seed in (2, 3)),
)
# one job per kind for make smoke: word, hidden, sequence, and the first attention job
DISTILL_SMOKE_JOBS = (*DISTILL_JOBS[:3], next(job for job in DISTILL_JOBS if job[1] == "distill=attention"))

# The SNLI full-subset study (conf/experiment/quality/snli.yaml) in the order the runs should land: every method's
# first seed before any second seed, so that a partial grid already compares all four; then the three compressed
# methods distilled from the dense run of their seed with quality_glue's recipe (logits, alpha 0.9, T 1).
SNLI_METHODS = ("shapeshift=study_glue/o2_r8_emb57", "shapeshift=study_glue/lowrank_r8_emb12", "arch=encoder_small_d16")
SNLI_PLAIN_JOBS = tuple((f"seed={seed}", method) for seed in (1, 2) for method in ("shapeshift=dense", *SNLI_METHODS))
SNLI_DISTILL = ("distill=word", "distill.alpha=0.9", "distill.temperature=1.0",
                'distill.teacher=${run.outputs}/quality_snli${oc.select:scale.suffix,""}/${data.name}-d128-dense-s${seed}',
                "run.name=${data.name}-${oc.select:arch.label,d128}-${shapeshift.name}-distilled-word-s${seed}")
SNLI_JOBS = (*SNLI_PLAIN_JOBS,
             *((f"seed={seed}", method, *SNLI_DISTILL) for seed in (1, 2) for method in SNLI_METHODS))

REGISTRY: dict[str, TableSpec] = {spec.id: spec for spec in (
    TableSpec("table1", build_table1, aliases=("1",)),  # pipelines/bench_model.py
    TableSpec("table1_bf16", partial(build_table1, name="table1_bf16",
                                     title="Table 1 under bf16 autocast: time overhead of Shapeshifter vs dense"),
              aliases=("1_bf16",), bench_args=("--amp", "bf16")),
    TableSpec("table2", translation_builder("table2"), ("table2/iwslt14",), aliases=("2",)),
    TableSpec("table2_wmt", translation_builder("table2_wmt"), ("table2/wmt18",), aliases=("2_wmt",)),
    TableSpec("embedding_table", translation_builder("embedding_table"), ("embedding_table/iwslt14",),
              aliases=("embedding",)),
    TableSpec("ablation", translation_builder("ablation"), ("ablation/iwslt14",)),
    TableSpec("glue_table", build_glue_table, ("glue_table/scratch", "glue_table/pretrained"), aliases=("glue",),
              smoke_scale="smoke_glue"),
    TableSpec("quality", records_builder(build_quality_table, "translation"),
              ("quality/grid_dense", "quality/grid_10x", "quality/grid_lowrank", "quality/grid_narrow",
               "quality/grid_sizes", "quality/grid_tuned", "quality/grid_embeddings", "quality/grid_distill",
               "quality/grid_distill_lowrank", "quality/grid_distill_narrow", "quality/grid_distill_25x",
               "quality/grid_distill_seq_refs"),
              full_scale="cpu", with_dense=False),
    # its own runs on a narrower base, beside the full-width pair of the quality table's records
    TableSpec("quality_width", records_builder(build_width_table, "translation", also=("quality",)),
              ("quality/grid_width",), full_scale="cpu", with_dense=False),
    TableSpec("quality_why", records_builder(build_why_table, "translation"), ("quality/why",), full_scale="cpu",
              jobs=WHY_JOBS),
    # after quality (its dense runs are the teachers); rows beside their undistilled quality_why twins
    TableSpec("quality_distill", records_builder(build_distill_table, "translation", also=("quality_why",),
                                               benchmarks=("bench_distill",)),
              ("quality/distill",), full_scale="cpu", jobs=DISTILL_JOBS,
              smoke_jobs=DISTILL_SMOKE_JOBS, sources=("quality",)),
    TableSpec("quality_glue", records_builder(build_quality_glue_table, "glue"),
              ("quality/glue_grid", "quality/glue_grid_narrow", "quality/glue_distill", "quality/glue_distill_narrow"),
              smoke_scale="smoke_glue", full_scale="cpu", with_dense=False),  # glue_grid's dense runs teach the rest
    TableSpec("quality_snli", records_builder(build_quality_snli_table, "glue"), ("quality/snli",),
              smoke_scale="smoke_snli", full_scale="cpu", jobs=SNLI_JOBS,
              smoke_jobs=tuple(job for job in SNLI_JOBS if job[0] == "seed=1")),  # smoke: every job's first seed
)}
TABLE_IDS = tuple(REGISTRY)


def get_table(name: str) -> TableSpec:
    """The table with this id or alias; ValueError listing the known ones."""
    for spec in REGISTRY.values():
        if name == spec.id or name in spec.aliases:
            return spec
    known = ", ".join(f"{s.id} ({'/'.join(s.aliases)})" if s.aliases else s.id for s in REGISTRY.values())
    raise ValueError(f"unknown table {name!r}; known: {known}")


def group_name(table: str, scale: str) -> str:
    """Records subfolder (``run.group``) of a table at a scale."""
    return table if scale == "full" else f"{table}-{scale}"


def scale_suffix(group: str) -> str:
    """The ``-<scale>`` that `group_name` appended to a records subfolder (``""`` at full scale)."""
    return next((f"-{scale}" for scale in SCALES if scale != "full" and group.endswith(f"-{scale}")), "")


def tables_dir(tables_root: Path, scale: str) -> Path:
    return tables_root if scale == "full" else tables_root / scale


def build_table(table: str, scale: str, records_root: Path, tables_root: Path) -> str:
    """Build one table from ``<records_root>/<group>``; FileNotFoundError when it has no finished records."""
    spec = get_table(table)
    return spec.build(records_root / group_name(spec.id, scale), tables_dir(tables_root, scale))


def build_all(records_root: Path, tables_root: Path) -> list[str]:
    """Rebuild every table that has finished records; returns ``<scale>/<table>`` of those written.

    A table whose records are inconsistent is not written; the others still are, then a ValueError lists
    every such table.
    """
    built, problems = [], []
    for scale in SCALES:
        for table in REGISTRY:
            try:
                build_table(table, scale, records_root, tables_root)
            except FileNotFoundError:
                continue
            except ValueError as err:
                problems.append(f"{scale}/{table}: {err}")
                continue
            built.append(f"{scale}/{table}")
    if problems:
        raise ValueError(f"built {', '.join(built) or 'nothing'}; not built:\n" + "\n".join(problems))
    return built
