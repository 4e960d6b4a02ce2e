"""Records attached to W&B runs and fetched back: the same tables, byte for byte, and clear errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from shapeshifter.experiment.records import new_record, write_record
from shapeshifter.experiment.wandb_records import RECORD_FILE, attach_record, fetch_records
from shapeshifter.reports.registry import build_all, group_name

GROUP = group_name("table2", "smoke")
PAPER = {"embedding": {"rank": 16, "order": 2, "scheme": "balanced"},
         "attention": {"rank": 1, "order": 2, "scheme": "balanced"}}


# -- a stand-in for wandb.apis.public: Api.runs(path, filters=...), Run.files(names=...), File.download(...) --
class FakeFile:
    def __init__(self, name: str, content: bytes | None) -> None:
        self.name, self._content = name, content
        self.size = len(content) if content is not None else 0  # the server lists a missing name with size 0
        self.md5 = "0" if content is None else "x"

    def download(self, root: str = ".", replace: bool = False, exist_ok: bool = False, api: Any = None):
        path = Path(root) / self.name
        if path.exists() and not replace:
            raise ValueError("File already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self._content or b"")
        return open(path)


class FakeRun:
    def __init__(self, run_id: str, name: str, group: str | None, content: bytes | None,
                 listed: bool = True) -> None:
        self.id, self.name, self.group = run_id, name, group
        self._files = {RECORD_FILE: FakeFile(RECORD_FILE, content)} if listed else {}

    def files(self, names: list[str] | None = None, pattern: str | None = None, per_page: int = 50) -> list:
        return [f for n, f in self._files.items() if not names or n in names]

    def file(self, name: str) -> FakeFile:
        return self._files[name]


class FakeApi:
    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs, self.calls = runs, []

    def runs(self, path: str | None = None, filters: dict | None = None, order: str = "+created_at",
             per_page: int = 50, include_sweeps: bool = False, lazy: bool = True) -> list[FakeRun]:
        self.calls.append((path, filters))
        group = (filters or {}).get("group")
        return [r for r in self._runs if group is None or r.group == group]


class FakeSummary(dict):
    pass


class FakeWandbRun:
    """What attach_record uses of wandb.run: dir, save(...), summary.update(...)."""

    def __init__(self, run_dir: Path, fail: bool = False) -> None:
        self.id, self.dir, self.summary, self.saved, self._fail = "fake", str(run_dir), FakeSummary(), [], fail
        run_dir.mkdir(parents=True, exist_ok=True)

    def save(self, glob_str: str, base_path: str | None = None, policy: str = "live") -> list[str]:
        if self._fail:
            raise OSError("disk full")
        self.saved.append((glob_str, base_path, policy))
        return [glob_str]


# -- records as the translation pipeline writes them -----------------------------------------------------------
def _record(name: str, seed: int, params: int, bleu: float, policy: dict | None, status: str = "done") -> dict:
    config = {"shapeshift": {"name": name}, "seed": seed, "data": {"name": "synthetic"},
              "run": {"name": f"{name}-s{seed}", "group": GROUP}}
    rec = new_record(config, "translation")
    rec.update(status=status, policy=policy, finished_at="2026-01-01T00:00:00+0000",
               params={"total": params, "dense_model_total": 1000, "reduction_vs_dense": 1000 / params},
               timings={"train_s": 10.0 + seed / 3, "train_steps": 10, "test_generate_s": 2.0 + params / 1000},
               metrics={"test": {"tokenized_bleu": bleu + seed / 7, "sacrebleu": bleu},
                        "copy_baseline": {"tokenized_bleu": 1.5, "sacrebleu": 1.0}})
    return rec


def _local_path(root: Path, rec: dict) -> Path:
    return root / rec["config"]["run"]["group"] / f"{rec['config']['run']['name']}-{rec['config_hash']}.json"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [_record(name, seed, params, bleu, policy) for seed in (1, 2)
            for name, params, bleu, policy in (("dense", 1000, 30.0, None), ("paper", 80, 28.0, PAPER))]


def _attached(rec: dict, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The bytes attach_record leaves in a W&B run's files folder for this record."""
    import wandb

    fake = FakeWandbRun(tmp / "wandb-run" / rec["config_hash"])
    monkeypatch.setattr(wandb, "run", fake)
    path = attach_record(rec)
    monkeypatch.setattr(wandb, "run", None)
    assert path == Path(fake.dir) / RECORD_FILE and fake.saved == [(str(path), fake.dir, "now")]
    assert fake.summary == {"config_hash": rec["config_hash"], "kind": "translation", "status": rec["status"]}
    return path.read_bytes()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _local_and_attached(records: list[dict], local: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    """Write the records locally and return fake W&B runs holding what attach_record left for each."""
    runs = []
    for i, rec in enumerate(records):
        write_record(rec, _local_path(local, rec))
        runs.append(FakeRun(f"id{i}", rec["config"]["run"]["name"], GROUP, _attached(rec, tmp, monkeypatch)))
    return runs


def test_fetched_records_rebuild_the_same_tables_byte_for_byte(records, tmp_path, monkeypatch, caplog) -> None:
    local = tmp_path / "local"
    runs = _local_and_attached(records, local, tmp_path, monkeypatch)
    runs.append(FakeRun("nofile", "crashed", GROUP, None))  # listed by the server with size 0
    runs.append(FakeRun("unlisted", "old", GROUP, None, listed=False))
    runs.append(FakeRun("other", "elsewhere", "another-group", b"not even json"))
    api = FakeApi(runs)

    with caplog.at_level(logging.WARNING, logger="shapeshifter.experiment.wandb_records"):
        paths = fetch_records("me/shapeshifter", tmp_path / "fetched", api=api, group=GROUP)
    assert api.calls == [("me/shapeshifter", {"group": GROUP})]
    assert paths == sorted(_local_path(tmp_path / "fetched", r) for r in records)
    assert "me/shapeshifter/nofile ('crashed') has no shapeshifter_record.json: skipped" in caplog.text
    assert "me/shapeshifter/unlisted ('old')" in caplog.text
    assert _tree(tmp_path / "fetched") == _tree(local)  # the very bytes of the local records

    assert build_all(local, tmp_path / "tables-local") == ["smoke/table2"]
    assert build_all(tmp_path / "fetched", tmp_path / "tables-wandb") == ["smoke/table2"]
    tables = _tree(tmp_path / "tables-local")
    assert {Path(k).suffix for k in tables} == {".md", ".tex", ".csv", ".png"}
    assert _tree(tmp_path / "tables-wandb") == tables

    # fetching again (into the same folder, or a fresh one) gives the same bytes and no conflict
    assert fetch_records("me/shapeshifter", tmp_path / "fetched", api=api, group=GROUP) == paths
    assert fetch_records("me/shapeshifter", tmp_path / "again", api=api, group=GROUP) == sorted(
        _local_path(tmp_path / "again", r) for r in records)
    assert _tree(tmp_path / "fetched") == _tree(tmp_path / "again") == _tree(local)


def test_group_falls_back_to_the_wandb_run_group(records, tmp_path) -> None:
    rec = records[0] | {"config": {"seed": 1}}
    run = FakeRun("a1", "dense-s1", "table2-smoke", json.dumps(rec).encode())
    paths = fetch_records("me/p", tmp_path, api=FakeApi([run]))
    assert paths == [tmp_path / "table2-smoke" / f"dense-s1-{rec['config_hash']}.json"]


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "is not valid JSON"),
    (b"[1, 2]", "is not a JSON object"),
    (json.dumps({"config_hash": "abc", "config": {}}).encode(), "lacks kind, status"),
    (json.dumps({"config_hash": "abc", "kind": "k", "status": "done", "config": [1]}).encode(), "config that is not"),
    (json.dumps({"config_hash": "abc", "kind": "k", "status": "done",
                 "config": {"run": {"name": "x", "group": "../up"}}}).encode(), "group '../up' cannot be used"),
])
def test_bad_record_files_fail_naming_the_run(tmp_path, content, message) -> None:
    good = FakeRun("good", "g", "grp", json.dumps({"config_hash": "h", "kind": "k", "status": "done",
                                                   "config": {}}).encode())
    api = FakeApi([good, FakeRun("bad1", "broken-run", "grp", content)])
    with pytest.raises(ValueError, match=message) as err:
        fetch_records("me/p", tmp_path / "dest", api=api)
    assert "me/p/bad1 ('broken-run')" in str(err.value)
    assert not (tmp_path / "dest").exists()  # nothing written when one run is bad


def test_project_must_name_the_entity(tmp_path) -> None:
    with pytest.raises(ValueError, match="ENTITY/PROJECT"):
        fetch_records("shapeshifter", tmp_path, api=FakeApi([]))


def test_local_records_are_only_replaced_by_a_finished_record(records, tmp_path) -> None:
    done = records[0]
    other = done | {"timings": {"train_s": 99.0}}
    running = done | {"status": "running"}
    path = _local_path(tmp_path, done)
    run = FakeRun("r1", done["config"]["run"]["name"], GROUP, json.dumps(done).encode())

    write_record(other, path)  # a different finished record: refused, naming both, file untouched
    before = path.read_bytes()
    with pytest.raises(ValueError, match="differs from the one of W&B run me/p/r1") as err:
        fetch_records("me/p", tmp_path, api=FakeApi([run]))
    assert str(path) in str(err.value) and path.read_bytes() == before

    write_record(running, path)  # an unfinished local record: the finished one replaces it
    assert fetch_records("me/p", tmp_path, api=FakeApi([run])) == [path]
    assert json.loads(path.read_text())["status"] == "done"

    unfinished_run = FakeRun("r2", done["config"]["run"]["name"], GROUP, json.dumps(running).encode())
    with pytest.raises(ValueError, match="differs"):  # an unfinished fetched record never replaces a finished one
        fetch_records("me/p", tmp_path, api=FakeApi([unfinished_run]))
    assert json.loads(path.read_text())["status"] == "done"


def test_two_runs_with_the_same_record_name_and_different_content(records, tmp_path) -> None:
    done = records[0]
    name = done["config"]["run"]["name"]
    a = FakeRun("a", name, GROUP, json.dumps(done).encode())
    b = FakeRun("b", name, GROUP, json.dumps(done | {"timings": {}}).encode())
    with pytest.raises(ValueError, match="me/p/b .* and W&B run me/p/a .* both give"):
        fetch_records("me/p", tmp_path, api=FakeApi([a, b]))
    # a finished and an unfinished one: the finished one is kept, whatever the order
    c = FakeRun("c", name, GROUP, json.dumps(done | {"status": "running"}).encode())
    for order in ([a, c], [c, a]):
        dest = tmp_path / f"order-{order[0].id}"
        [path] = fetch_records("me/p", dest, api=FakeApi(order))
        assert json.loads(path.read_text()) == json.loads(json.dumps(done))


def test_attach_without_a_wandb_run_or_with_a_failing_one_never_raises(records, tmp_path, monkeypatch,
                                                                        caplog) -> None:
    import wandb

    monkeypatch.setattr(wandb, "run", None)
    assert attach_record(records[0]) is None
    monkeypatch.setattr(wandb, "run", FakeWandbRun(tmp_path / "run", fail=True))
    with caplog.at_level(logging.WARNING, logger="shapeshifter.experiment.wandb_records"):
        assert attach_record(records[0]) is None
    assert "could not attach the run record to W&B run fake: OSError: disk full" in caplog.text


def test_attach_to_a_real_offline_wandb_run(records, tmp_path, monkeypatch) -> None:
    import wandb

    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                       "WANDB_CONFIG_DIR": str(tmp_path / "config"), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
                       "WANDB_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    rec = records[1]
    run = wandb.init(project="shapeshifter-test", dir=str(tmp_path), mode="offline", name="paper-s1", group=GROUP)
    try:
        path = attach_record(rec)
        assert path is not None and path.parent == Path(run.dir)
        # what the project hands to W&B: the summary keys (read back from the run, not from W&B's own files)
        assert run.summary["config_hash"] == rec["config_hash"]
    finally:
        wandb.finish()
    [files] = list((tmp_path / "wandb").glob("offline-run-*/files"))
    assert (files / RECORD_FILE).read_bytes() == write_record(rec, tmp_path / "local.json").read_bytes()


def test_reproduce_tables_from_wandb_cli(records, tmp_path, monkeypatch, capsys) -> None:

    import wandb

    local = tmp_path / "local"
    runs = _local_and_attached(records, local, tmp_path, monkeypatch)
    monkeypatch.setattr(wandb, "Api", lambda *a, **k: FakeApi(runs))
    from shapeshifter.cli import reproduce

    args = ["tables", "--from-wandb", "me/shapeshifter", "--records", str(tmp_path / "w"), "--tables"]
    assert reproduce.main([*args, str(tmp_path / "t-wandb")]) == 0
    assert "fetched 4 record(s) from W&B project me/shapeshifter" in capsys.readouterr().out
    assert reproduce.main(["tables", "--records", str(local), "--tables", str(tmp_path / "t-local")]) == 0
    assert _tree(tmp_path / "t-wandb") == _tree(tmp_path / "t-local") != {}
    with pytest.raises(SystemExit):
        reproduce.main(["2", "--from-wandb", "me/shapeshifter"])

    def no_key(*args, **kwargs):
        raise RuntimeError("No API key configured")

    monkeypatch.setattr(wandb, "Api", no_key)
    before = _tree(tmp_path / "w")
    assert reproduce.main([*args, str(tmp_path / "t-x")]) == 1
    assert "could not fetch run records from W&B project me/shapeshifter" in capsys.readouterr().err
    assert _tree(tmp_path / "w") == before and not (tmp_path / "t-x").exists()
