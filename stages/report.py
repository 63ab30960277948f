"""Stage `report`: paper-style tables and figures, rendered from the metrics files only."""
from pkd.pipeline import paths
from pkd.pipeline.environment import environment, summary
from pkd.pipeline.stage import load_checked_params, run_stage
from pkd.pipeline.tracking import find_repo_root, stage_run
from pkd.report import build_report


def main() -> None:
    params = load_checked_params()
    config = {
        "preset": params.preset,
        "teacher": params.teacher.checkpoint + (" (fine-tuned, used as is)" if params.teacher.fine_tuned else ""),
        # Each task's own: data.source, or the user's files (data.custom_tasks).
        "data": ", ".join(f"{t}: {'data.custom_tasks' if t in params.data.custom_tasks else params.data.source}"
                          for t in params.data.tasks),
        "tasks": ", ".join(params.data.tasks),
        "student depths": ", ".join(map(str, params.student.depths)),
        "strategies": ", ".join(params.student.strategies),
        "student init": params.student.init,
        **({"student init checkpoint": params.student.init_checkpoint} if params.student.init_checkpoint else {}),
        "seed (teacher, data)": params.seed,
        "student seeds": ", ".join(map(str, params.student.seeds)),
        "selection": params.report.selection,
        # This stage's interpreter; each training run's own is in its MLflow tags (pkd.env.*).
        "environment": summary(environment(find_repo_root())),
    }
    # The weights the students trained with: the loss-terms table shows each weighted term's share.
    weights = {name: {"alpha": s.alpha, "beta": s.beta} for name, s in params.strategies.items()
               if name in params.student.strategies}
    # Labelled "<label> + proj" in every table and figure: an extension, not the paper's method.
    projected = {name for name, s in params.strategies.items() if s.projection}
    with stage_run("report", params=config, tags={}) as run:
        outputs = build_report(paths.METRICS, paths.REPORTS, config, selected=params.report.selection,
                               loss_weights=weights, projected=projected)
        for path in outputs.values():
            run.log_artifact(path)


if __name__ == "__main__":
    run_stage(main)
