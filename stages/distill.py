"""Stage `distill`: train one student (task x strategy x depth) from the teacher cache."""
from datasets import load_from_disk

from pkd import paths
from pkd.stage import config_hash, load_checked_params, run_stage, stage_args
from pkd.config import STRATEGY_LAYER_MAP, ConfigError
from pkd.data import get_task
from pkd.layers import layer_map
from pkd.models import build_student, check_checkpoints, load_tokenizer
from pkd.precision import resolve_precision
from pkd.teacher_cache import MANIFEST, load_cache
from pkd.tracking import stage_run
from pkd.training import random_subset, train_model


def main() -> None:
    args = stage_args("task", "strategy", "depth", "seed")
    params = load_checked_params(check_checkpoints)
    task = get_task(args.task)
    if args.strategy not in params.student.strategies:
        raise ConfigError(f"student.strategies: '{args.strategy}' is not listed; allowed: {params.student.strategies}")
    strategy, student = params.strategy(args.strategy), params.student.for_task(task.name)
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
    name = paths.student_name(args.strategy, args.depth, args.seed)
    # student.seeds lists every seed of the matrix; this run is one of them.
    settings = student.model_dump(exclude={"seeds"})
    tracked = {"student": settings, "strategy": strategy.model_dump(), "teacher_layers": layers, "seed": args.seed, "pooling": params.pooling,
               "normalize_patience": student.patience_normalized(task.name, args.depth), "precision": precision}
    tags = {"task": task.name, "strategy": args.strategy, "depth": args.depth, "seed": args.seed}
    # A leftover checkpoint is resumed only by the same run: same params, data, teacher and cache.
    inputs = [paths.prepared(task.name)]
    if cache is not None or student.init == "finetuned":
        inputs.append(teacher_dir)
    if cache is not None:
        inputs.append(paths.teacher_cache(task.name) / MANIFEST)  # names the teacher, data and dtype
    run_key = config_hash(tracked, params.teacher.checkpoint, params.seed, *inputs)
    with stage_run("distill", params=tracked, tags=tags) as run:
        train_model(
            build_student(params.student_checkpoint(), args.depth, task, student.init, teacher_dir, seed=args.seed, pooling=params.pooling),
            load_tokenizer(params.teacher.checkpoint),
            task=task,
            train=random_subset(splits["train"], student.max_train_samples, params.seed),
            dev=splits[task.dev_splits[0]],
            params=student,
            learning_rate=params.student_learning_rate(args.strategy, task.name),
            seed=args.seed,
            checkpoint_dir=paths.checkpoints(f"{task.name}-{name}-{run_key}"),
            model_out=paths.student_model(task.name, args.strategy, args.depth, args.seed),
            history_out=paths.history(task.name, name),
            cache=cache,
            alpha=strategy.alpha,
            beta=strategy.beta,
            temperature=strategy.temperature,
            teacher_layers=layers,
            precision=precision,
            kd_reduction=student.kd_reduction,
            normalize_patience=student.patience_normalized(task.name, args.depth),
            tracker=run,  # per-epoch metrics reach MLflow while training runs
        )
        run.log_artifact(paths.history(task.name, name))


if __name__ == "__main__":
    run_stage(main)
