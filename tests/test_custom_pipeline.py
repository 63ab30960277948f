"""Distill your own classifier, end to end through `dvc repro`: CSV files with their own column
names -> prepare -> a teacher the pipeline trained before, used as is -> cache -> KD and PKD
students -> evaluate -> report -> `pkd predict` with the user's label names. DVC tracks the files."""
import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, make_repo, save_hf_classifier, save_tiny_bert
from conftest import run_cmd as run

pytestmark = pytest.mark.slow
TASK = "moods"
LABELS = {0: "unhappy", 1: "happy"}


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def write_own_files(folder: Path) -> None:
    """The built-in sentiment data as a user's CSV: columns `body` and `mood`, label names as text."""
    from pkd.data import load_task

    folder.mkdir(parents=True)
    splits = load_task("builtin_sentiment", "builtin", seed=0, builtin_train_size=64, builtin_dev_size=32)
    for split in ("train", "dev"):
        with (folder / f"{split}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "body", "mood"])
            writer.writerows((i, t, LABELS[y]) for i, t, y in zip(splits[split]["idx"], splits[split]["text_a"],
                                                                    splits[split]["label"]))
    (folder / "test.csv").write_text("id,body\n1,a wonderful day\n2,a dreadful mess\n")


def own_params(own: Path, checkpoint: Path, **teacher) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(tasks=[TASK], max_seq_length=48, custom_tasks={TASK: {
        "train": str(own / "train.csv"), "dev": str(own / "dev.csv"), "test": str(own / "test.csv"),
        "text": "body", "label": "mood"}})
    params["teacher"].update(checkpoint=str(checkpoint), epochs=1, batch_size=16, train_eval_samples=16, **teacher)
    params["student"].update(depths=[2], epochs=1, batch_size=16, train_eval_samples=16,
                             strategies=["kd", "pkd_skip"], finetune_strategies=[],
                             distill_strategies=["kd", "pkd_skip"])
    params["timing"].update(warmup=0, repeats=1, max_examples=16)
    return params


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    own = tmp_path_factory.mktemp("own") / "moods"
    write_own_files(own)
    # A teacher the pipeline itself fine-tuned on the user's files...
    trained = tmp_path_factory.mktemp("trained")
    env = make_repo(trained, own_params(own, save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))))
    run(["dvc", "repro", f"teacher@{TASK}"], trained, env)
    # ... is the already fine-tuned teacher of a second project, which distils it.
    root = tmp_path_factory.mktemp("distil")
    env = make_repo(root, own_params(own, trained / "models/teacher" / TASK, fine_tuned=True))
    log = run(["dvc", "repro"], root, env)
    return root, env, log, own, trained


def test_the_chain_runs_from_files_to_report_without_training_the_teacher(chain):
    root, _, log, _, trained = chain
    assert {f"prepare@{TASK}", f"teacher@{TASK}", f"teacher_cache@{TASK}", f"distill@{TASK}-kd-2-42",
            f"distill@{TASK}-pkd_skip-2-42", f"evaluate@{TASK}", "report"} <= ran_stages(log)
    task = json.loads((root / "data/prepared" / TASK / "task.json").read_text())
    assert task["label_names"] == ["happy", "unhappy"] and task["metric_names"][:2] == ["accuracy", "macro_f1"]
    # The teacher is used as is: one scoring pass, the dev score it had when it was trained.
    history = json.loads((root / "metrics/train" / TASK / "teacher.json").read_text())
    trained_history = json.loads((trained / "metrics/train" / TASK / "teacher.json").read_text())
    assert [h["epoch"] for h in history] == [0]
    assert history[0]["dev_accuracy"] == pytest.approx(trained_history[-1]["dev_accuracy"])
    teacher_eval = json.loads((root / "metrics/eval" / TASK / "teacher.json").read_text())
    assert teacher_eval["splits"]["dev"]["accuracy"] == pytest.approx(history[0]["dev_accuracy"])
    assert set(teacher_eval["splits"]["dev"]) == {"accuracy", "macro_f1", "matthews_corrcoef", "n"}
    for student in ("kd-2-s42", "pkd_skip-2-s42"):
        config = json.loads((root / "models/students" / TASK / student / "config.json").read_text())
        assert config["id2label"] == {"0": "happy", "1": "unhappy"} and config["pkd_task_info"]["name"] == TASK
    report = (root / "reports/report.md").read_text()
    assert TASK in report and "PKD-Skip" in report
    # Unlabelled test rows are predicted by label name.
    test = (root / "predictions" / TASK / "pkd_skip-2-s42" / "test.tsv").read_text().splitlines()
    assert test[0] == "index\tprediction" and {line.split("\t")[1] for line in test[1:]} <= {"happy", "unhappy"}


def test_pkd_predict_prints_the_users_label_names(chain):
    root, env, *_ = chain
    proc = subprocess.run(["pkd", "predict", "--model", f"models/students/{TASK}/pkd_skip-2-s42", "--input", "-"],
                          cwd=root, env=env, input="what a lovely film\nawful and boring\n",
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "label\tprob_happy\tprob_unhappy"
    assert len(lines) == 3 and {line.split("\t")[0] for line in lines[1:]} <= {"happy", "unhappy"}


def test_an_edited_row_reruns_the_chain_and_an_unchanged_file_nothing(chain):
    root, env, _, own, _ = chain
    train = own / "train.csv"
    text = train.read_bytes()
    train.write_bytes(text)  # rewritten, same bytes: nothing to do
    assert ran_stages(run(["dvc", "repro"], root, env)) == set()
    lines = text.decode().splitlines()
    lines[1] = lines[1].replace("unhappy", "happy") if "unhappy" in lines[1] else lines[1].replace("happy", "unhappy")
    train.write_text("\n".join(lines) + "\n")
    ran = ran_stages(run(["dvc", "repro"], root, env))
    assert {f"prepare@{TASK}", f"teacher_cache@{TASK}", f"distill@{TASK}-kd-2-42", f"evaluate@{TASK}", "report"} <= ran
    assert "up to date" in run(["dvc", "status"], root, env)


def test_a_classifier_fine_tuned_elsewhere_distils_with_the_default_params(tmp_path):
    """A transformers classifier has no pkd pooling key: it pools with [CLS], while params.yaml's default is
    mean. A mismatch is refused before any stage work; `pkd task --fine-tuned-teacher` takes the teacher's."""
    own = tmp_path / "own"
    write_own_files(own)
    teacher = save_hf_classifier(tmp_path / "hf", labels=("happy", "unhappy"))
    params = own_params(own, teacher, fine_tuned=True)
    params["student"].update(strategies=["pkd_skip"], distill_strategies=["pkd_skip"])
    assert params["pooling"] == "mean"
    root = tmp_path / "repo"
    root.mkdir()
    env = make_repo(root, params)
    student = f"distill@{TASK}-pkd_skip-2-42"
    proc = subprocess.run(["dvc", "repro", student], check=False, cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and ran_stages(proc.stdout) == {f"prepare@{TASK}"}, proc.stdout + proc.stderr
    assert f"error: pooling: the fine-tuned teacher '{teacher}' pools with 'cls'" in proc.stderr
    assert not (root / "data/prepared" / TASK).exists()
    run(["pkd", "task", TASK, "--train", str(own / "train.csv"), "--dev", str(own / "dev.csv"), "--text", "body",
         "--label", "mood", "--fine-tuned-teacher", teacher], root, env)
    assert ran_stages(run(["dvc", "repro", student], root, env)) == {
        f"prepare@{TASK}", f"teacher@{TASK}", f"teacher_cache@{TASK}", student}
    cache = json.loads((root / "cache/teacher" / TASK / "manifest.json").read_text())
    config = json.loads((root / "models/students" / TASK / "pkd_skip-2-s42/config.json").read_text())
    assert cache["pooling"] == config["pkd_pooling"] == "cls"


def test_an_edited_glue_tsv_row_reruns_prepare(tmp_path):
    glue = tmp_path / "glue"
    (glue / "SST-2").mkdir(parents=True)
    rows = "".join(f"sentence {i}\t{i % 2}\n" for i in range(8))
    (glue / "SST-2/train.tsv").write_text("sentence\tlabel\n" + rows)
    (glue / "SST-2/dev.tsv").write_text("sentence\tlabel\n" + rows)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="glue_dir", glue_dir=str(glue), tasks=["sst2"], max_seq_length=32)
    params["teacher"]["checkpoint"] = str(save_tiny_bert(tmp_path / "bert"))
    root = tmp_path / "repo"
    root.mkdir()
    env = make_repo(root, params)
    assert ran_stages(run(["dvc", "repro", "prepare@sst2"], root, env)) == {"prepare@sst2"}
    (glue / "SST-2/dev.tsv").write_bytes((glue / "SST-2/dev.tsv").read_bytes())  # same bytes
    assert "prepare@sst2" not in run(["dvc", "status", "prepare@sst2"], root, env)
    (glue / "SST-2/dev.tsv").write_text((glue / "SST-2/dev.tsv").read_text().replace("sentence 3\t1", "sentence 3\t0"))
    assert "modified" in run(["dvc", "status", "prepare@sst2"], root, env)
    assert ran_stages(run(["dvc", "repro", "prepare@sst2"], root, env)) == {"prepare@sst2"}
