from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "spike_perception"
here = Path(__file__).resolve().parent
# The bundled default model lives at the repository's top (models/default, shared with the toolkit); it is
# installed with the package so that a colcon install on a robot finds it without the repository.
model = here.parents[2] / "models" / "default"
model_files = sorted(f"../../../models/default/{p.name}" for p in model.glob("*"))

setup(
    name=package_name,
    version="0.2.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/models/default", model_files),
    ],
    install_requires=["setuptools"],
    tests_require=["pytest"],
    zip_safe=True,
    maintainer="anytime-snn maintainers",
    maintainer_email="maintainers@anytime-snn.invalid",
    description="Anytime image classification with a spiking neural network (ROS 2 node).",
    license="MIT",
    entry_points={
        "console_scripts": [
            "anytime_classifier = spike_perception.node:main",
            "anytime_classifier_lifecycle = spike_perception.node:main_lifecycle",
            "planner_example = spike_perception.planner_example:main",
        ],
    },
)
