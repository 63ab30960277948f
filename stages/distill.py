"""Stage `distill`: train one student (task x strategy x depth) from the teacher cache."""
from datasets import load_from_disk

from pkd import paths
from pkd.cli import config_hash, load_checked_params, run_stage, stage_args
from pkd.config import STRATEGY_LAYER_MAP, ConfigError
from pkd.data import get_task
from pkd.layers import layer_map
from pkd.models import build_student, load_tokenizer
from pkd.precision import resolve_precision
from pkd.teacher_cache import load_cache
from pkd.tracking import stage_run
from pkd.training import train_model


def main() -> None:
    args = stage_args("task", "strategy", "depth")
    params = load_checked_params()
    task = get_task(args.task)
    if args.strategy not in params.student.strategies:
        raise ConfigError(f"student.strategies: '{args.strategy}' is not listed; allowed: {params.student.strategies}")
    strategy, student = params.strategy(args.strategy), params.student
    splits = load_from_disk(str(paths.prepared(task.name)))
    teacher_dir = paths.teacher_model(task.name)
    cache = None
    if strategy.alpha > 0 or strategy.beta > 0:
        cache = load_cache(paths.teacher_cache(task.name), "train", dataset=splits["train"], teacher_dir=teacher_dir,
                           pooling=params.pooling)
    layers = None
    if STRATEGY_LAYER_MAP[args.strategy] and strategy.beta > 0:
        layers = layer_map(STRATEGY_LAYER_MAP[args.strategy], cache.num_layers, args.depth)
        cache.require_layers(layers)
    precision = resolve_precision(params.precision)
    name = paths.student_name(args.strategy, args.depth)
    tracked = {"student": student.model_dump(), "strategy": strategy.model_dump(), "teacher_layers": layers, "seed": params.seed, "pooling": params.pooling, "precision": precision}
    tags = {"task": task.name, "strategy": args.strategy, "depth": args.depth}
    with stage_run("distill", params=tracked, tags=tags) as run:
        history = train_model(
            build_student(params.teacher.checkpoint, args.depth, task, student.init, teacher_dir, seed=params.seed, pooling=params.pooling),
            load_tokenizer(params.teacher.checkpoint),
            task=task,
            train=splits["train"],
            dev=splits[task.dev_splits[0]],
            params=student,
            learning_rate=params.student_learning_rate(args.strategy),
            seed=params.seed,
            checkpoint_dir=paths.checkpoints(f"{task.name}-{name}-{config_hash(tracked)}"),
            model_out=paths.student_model(task.name, args.strategy, args.depth),
            history_out=paths.history(task.name, name),
            cache=cache,
            alpha=strategy.alpha,
            beta=strategy.beta,
            temperature=strategy.temperature,
            teacher_layers=layers,
            precision=precision,
            kd_reduction=student.kd_reduction,
            normalize_patience=student.normalize_patience,
        )
        run.log_history(history)
        run.log_artifact(paths.history(task.name, name))


if __name__ == "__main__":
    run_stage(main)
