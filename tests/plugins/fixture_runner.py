"""A fixture runner: writes one run file per seed, so the CLI's dispatch can be tested end to end."""

from rmroute.harness.core.config import config_sha256
from rmroute.harness.results import (DataInfo, RouterInfo, RunRecord, code_version, new_run_id, now_iso,
                             package_versions, reproduce_command, write_run)


def run(cfg, config_path, out_dir):
    paths = []
    for seed in cfg.seeds:
        rec = RunRecord(
            run_id=new_run_id(f"seed{seed}"), kind=cfg.kind, suite=cfg.suite,
            router=RouterInfo(name=cfg.routers[0].name, params=cfg.routers[0].params),
            reward_models=[r.name for r in cfg.reward_models],
            data=DataInfo(name="fixture", sha256="0" * 64, n=0), seed=seed,
            metrics={"accuracy": 0.5 + seed / 10}, wall_s=0.0,
            config=cfg.model_dump(mode="json"), config_sha256=config_sha256(cfg),
            code=code_version(), packages=package_versions(), command=reproduce_command(str(config_path)),
            created=now_iso(),
        )
        paths.append(write_run(rec, out_dir))
    return paths
