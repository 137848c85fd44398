"""Run configuration: YAML + overrides, validated at once, naming the bad key."""
from __future__ import annotations

from pathlib import Path

import pytest

from eipnn_training.cli.train import STRATEGIES, main
from eipnn_training.config import ConfigError, load_config, parse_overrides, save_config
from eipnn_training.models.build import build_potential
from eipnn_training.train.session import check_choices, model_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


EXAMPLE_SPECIES = {"si": ["Si"], "al": ["Al"], "agau": ["Ag", "Au"]}  # by the name's data set


@pytest.mark.parametrize("name", sorted(path.name for path in EXAMPLES.glob("*.yaml")))
def test_examples_load_pick_known_pieces_and_build(name):
    config = load_config(EXAMPLES / name)
    check_choices(config, STRATEGIES)
    assert config.model.species == EXAMPLE_SPECIES[name.split("_pbe_")[0]]
    if config.data.path is not None:  # a set made here: its species, its own EIPs for LA and MP
        assert config.data.path == f"data/{name.split('_pbe_')[0]}-pbe"
        assert config.la.eips == config.pretrain.eips == [name.split("_pbe_")[0]]
    # The hyper-parameters are the model kind's own (a SchNet key in a CGCNN config fails here).
    assert build_potential(model_spec(config, config.model.species)).head.num_outputs == 1


def test_baseline_example_has_the_papers_settings():
    config = load_config(EXAMPLES / "si_pbe_schnet_baseline.yaml")
    t = config.train
    assert (t.epochs, t.batch_size, t.lr, t.lr_final, t.grad_clip, t.force_weight) == (100, 32, 1e-3, 1e-5, 5.0, 0.0)
    assert config.model.hyperparameters == {"num_features": 128, "num_interactions": 5, "num_rbf": 128}
    assert config.data.path is None and config.model.cutoff_angstrom == 5.0


def test_overrides_reach_nested_keys_and_parse_as_yaml(tmp_path):
    config = load_config(write(tmp_path, "train: {epochs: 5}\n"),
                         ["train.epochs=7", "data.split_seed=2", "train.lr=1e-4", "device=cpu"])
    assert (config.train.epochs, config.data.split_seed, config.train.lr) == (7, 2, 1e-4)
    assert parse_overrides(["model.species=[Si, C]"]) == {"model": {"species": ["Si", "C"]}}


def test_resolved_config_round_trips(tmp_path):
    config = load_config(EXAMPLES / "si_pbe_schnet_tiny.yaml", ["train.epochs=3"])
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config


@pytest.mark.parametrize("text, message", [
    ("trian: {epochs: 3}\n", "unknown config key 'trian'"),
    ("train: {epoch: 3}\n", "unknown config key 'train.epoch'"),
    ("train: {epochs: three}\n", "config key 'train.epochs' must be int, got str"),
    ("train: {epochs: 2.5}\n", "config key 'train.epochs' must be int, got float"),
    ("train: {lr: fast}\n", "config key 'train.lr' must be float, got str"),
    ("data: {split_seed: true}\n", "config key 'data.split_seed' must be an int, got a bool"),
    ("model: {species: Si}\n", "config key 'model.species' must be list, got str"),
    ("train: 3\n", "config key 'train' must be a mapping"),
    ("train: {epochs: 0}\n", "config key 'train.epochs' must be > 0"),
    ("data: {max_val: 0}\n", "config key 'data.max_val' must be >= 1"),
    ("data: {extra_pool: pool.xyz}\n", "config key 'data.extra_pool' must be list, got str"),
    ("data: {extra_pool: [3]}\n", "config key 'data.extra_pool' must be a list of file paths"),
    ("train: {dtype: float16}\n", "config key 'train.dtype' must be one of"),
    ("train: {compile: true, force_weight: 0.1}\n", "'train.compile' needs train.force_weight 0"),
])
def test_bad_configs_fail_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_bad_overrides_and_missing_file_fail(tmp_path):
    with pytest.raises(ConfigError, match="must look like key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="unknown config key 'train.nope'"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("override, message", [
    ("strategy=magic", "config key 'strategy' is 'magic'; known: baseline"),
    ("model.kind=transformer", "config key 'model.kind' is 'transformer'; known: cgcnn, gemnet, schnet, soapnet"),
    ("train.schedule=cosine", "config key 'train.schedule' is 'cosine'"),
])
def test_unknown_registry_names_fail_before_any_data_is_read(tmp_path, override, message):
    # A data path that does not exist: the name check must come first.
    with pytest.raises(ConfigError, match=message):
        # A flag between overrides must parse too (argparse needs intermixed parsing).
        main([str(write(tmp_path, "data: {path: /nowhere.xyz}\n")), override, "--overwrite", f"runs_dir={tmp_path}",
              "--debug"])  # --debug: the error is raised, not printed


PAPER_EXAMPLES = [f"si_pbe_{model}_{strategy}.yaml" for model in ("schnet", "soapnet", "cgcnn", "gemnet")
                  for strategy in ("baseline", "la", "mp", "mp_la")]
FORCE_EXAMPLES = ["si_pbe_schnet_forces.yaml", "si_pbe_soapnet_forces.yaml", "si_pbe_schnet_la_forces.yaml",
                  "si_pbe_schnet_mp_forces.yaml", "si_pbe_cgcnn_forces.yaml", "si_pbe_gemnet_forces.yaml",
                  "al_pbe_soapnet_forces.yaml", "agau_pbe_soapnet_forces.yaml"]


@pytest.mark.parametrize("name", PAPER_EXAMPLES)
def test_paper_examples_train_on_energies_only(name):
    """The paper reproduction: every force weight explicitly 0 (the default would train forces)."""
    config = load_config(EXAMPLES / name)
    check_choices(config, STRATEGIES)
    assert (config.train.force_weight, config.pretrain.force_weight, config.la.force_weight) == (0.0, 0.0, 0.0)
    assert "force_weight: 0.0" in (EXAMPLES / name).read_text()


@pytest.mark.parametrize("name", FORCE_EXAMPLES)
def test_force_examples_train_on_forces(name):
    config = load_config(EXAMPLES / name)
    check_choices(config, STRATEGIES)
    assert config.train.force_weight > 0 and not config.train.compile
    assert (config.pretrain.force_weight > 0) == (config.strategy in ("mp", "mp+la"))
    assert (config.la.force_weight > 0) == (config.strategy == "la")


def test_max_atoms_per_pass_is_checked():
    for bad, message in ((0, "must be a whole number >= 1 or null, got 0"), (-3, "must be a whole number >= 1 or null, got -3"),
                         (2.5, "must be int, got float")):
        with pytest.raises(ConfigError, match=f"train.max_atoms_per_pass' {message}"):
            load_config(EXAMPLES / "si_pbe_gemnet_forces.yaml", [f"train.max_atoms_per_pass={bad}"])
    assert load_config(EXAMPLES / "si_pbe_gemnet_forces.yaml", ["train.max_atoms_per_pass=256"]).train.max_atoms_per_pass == 256


def test_the_widened_soapnet_example_trains_forces_on_the_committed_eip_pool():
    """The shipped SOAPNet's recipe: EIP energies of the widened pool, then DFT forces."""
    config = load_config(EXAMPLES / "si_pbe_soapnet_mp_forces.yaml")
    check_choices(config, STRATEGIES)
    assert config.strategy == "mp" and config.train.force_weight == 10.0 and config.pretrain.force_weight == 0.0
    assert config.data.path is None and config.data.extra_pool == ["data/si-eip-pool/pool.extxyz.xz"]
    assert (EXAMPLES.parent / config.data.extra_pool[0]).is_file()


def test_force_weight_defaults_and_checks(tmp_path):
    config = load_config(None)
    assert config.train.force_weight is None  # resolved once the data is read
    assert (config.pretrain.force_weight, config.la.force_weight) == (0.0, 0.0)
    for key in ("train", "pretrain", "la"):
        with pytest.raises(ConfigError, match=f"'{key}.force_weight' must be >= 0"):
            load_config(None, [f"{key}.force_weight=-1"])
    with pytest.raises(ConfigError, match="'train.compile' needs train.force_weight 0"):
        load_config(None, ["train.compile=true"])  # null may mean forces
    with pytest.raises(ConfigError, match="'train.compile' needs train.force_weight 0"):
        load_config(None, ["train.compile=true", "train.force_weight=0", "pretrain.force_weight=0.5"])
    assert load_config(None, ["train.compile=true", "train.force_weight=0"]).train.compile


@pytest.mark.parametrize("hyperparameters, message", [
    ("{num_features: 32, radial_basis: fourier}", "unknown radial_basis 'fourier'"),
    ("{num_features: 32, radial_basis: bessel, rbf_width: dgl}", "bessel basis has none"),
    ("{num_features: 32, num_layers: 3}", "unexpected keyword argument 'num_layers'"),
])
def test_bad_model_hyperparameters_fail_before_any_data_is_read(tmp_path, hyperparameters, message):
    config = load_config(write(tmp_path, "data: {path: /nowhere.xyz}\n"),
                         [f"model.hyperparameters={hyperparameters}", f"runs_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=rf"model.hyperparameters' of 'schnet': .*{message}"):
        check_choices(config, {"baseline": None})


def test_descriptor_cache_mb_is_checked():
    with pytest.raises(ConfigError, match="train.descriptor_cache_mb' must be a number >= 0 or null, got -1"):
        load_config(EXAMPLES / "si_pbe_soapnet_forces.yaml", ["train.descriptor_cache_mb=-1"])
    for value, expected in (("0", 0), ("512.5", 512.5), ("null", None)):
        config = load_config(EXAMPLES / "si_pbe_soapnet_forces.yaml", [f"train.descriptor_cache_mb={value}"])
        assert config.train.descriptor_cache_mb == expected
