"""One distribution, two import packages: the runtime ``eipnn_calc`` and the
training package, installed as ``eipnn_training`` so it never clashes with a bare
``training`` module of another project."""
from setuptools import find_packages, setup

training_packages = ["eipnn_training"] + [
    "eipnn_training." + name for name in find_packages("training")
]

setup(
    name="eipnn",
    version="0.1.0",
    description="Neural-network interatomic potentials with knowledge injected from "
    "empirical potentials (Shui et al., NeurIPS 2022), usable from ASE, KIM and LAMMPS.",
    python_requires=">=3.10",
    packages=find_packages(include=["eipnn_calc", "eipnn_calc.*"]) + training_packages,
    package_dir={"eipnn_training": "training"},
    package_data={"eipnn_calc": ["kim/driver/*", "kim/driver/**/*"],
                  "eipnn_training.validation": ["references.yaml"]},
    install_requires=[
        "torch==2.13.*",
        "numpy>=2",
        "ase>=3.27",
        "matscipy>=1.3",
    ],
    extras_require={
        "training": ["pyyaml", "tqdm", "matplotlib", "scikit-learn", "kimpy"],
        "test": ["pytest", "hypothesis", "dscribe", "kimpy"],
        # GPAW builds from source: needs Debian's libxc-dev libopenmpi-dev libopenblas-dev
        # libfftw3-dev first (scripts/setup_env.sh); the PAW setups come with gpaw-data.
        "dft": ["gpaw>=26.7,<27", "gpaw-data>=1.2"],
    },
    entry_points={
        "console_scripts": [
            "eipnn-train=eipnn_training.cli.train:main",
            "eipnn-label=eipnn_training.cli.label:main",
            "eipnn-export=eipnn_training.cli.export:main",
            "eipnn-export-kim=eipnn_calc.kim.exporter:main",
            "eipnn-maps=eipnn_training.cli.maps:main",
            "eipnn-la-alpha=eipnn_training.cli.alpha_search:main",
            "eipnn-sample=eipnn_training.cli.sample:main",
            "eipnn-dft-label=eipnn_training.cli.dft_label:main",
            "eipnn-validate=eipnn_training.cli.validate:main",
        ]
    },
)
